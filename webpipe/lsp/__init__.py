"""The webpipe language server (`webpipe lsp`).

`analysis.py` turns an editor buffer into diagnostics and a program index (the same checks as
`webpipe check`); `locate.py` maps cursor offsets onto AST nodes; `features.py` answers
symbols, definitions, hover and completion as plain functions; `server.py` is the only module
that imports pygls, and only wires those functions to the protocol. Install with
`pip install 'webpipe[lsp]'`.
"""
