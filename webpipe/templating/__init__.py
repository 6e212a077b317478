"""A Handlebars engine with handlebars-rust 6 semantics (spec/handlebars.md).

Pipeline, one module each as in Jinja: `lexer` (text → tokens, whitespace control) →
`exprs` (tag bodies → calls, paths, literals) → `parser` (tokens → `nodes`) → `compiler`
(nodes → closures) → `runtime` (scopes, lookups, partials) with `helpers` and `values`
(rendering, escaping, truthiness). `Environment` ties them together:

    env = Environment({"badge": "<b>{{label}}</b>"})
    env.compile("{{> badge}}").render({"label": "hi"})   # "<b>hi</b>"
"""

from __future__ import annotations

from webpipe.templating.environment import Environment, Template
from webpipe.templating.errors import TemplateError, TemplateRenderError, TemplateSyntaxError

__all__ = [
    "Environment",
    "Template",
    "TemplateError",
    "TemplateRenderError",
    "TemplateSyntaxError",
]
