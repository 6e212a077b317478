"""The VS Code extension contributes the `webpipe` debugger (attach to --inspect's port)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from webpipe.debugger import DEFAULT_PORT

VSCODE = Path(__file__).resolve().parents[2] / "editors" / "vscode"


def test_manifest_contributes_the_debugger_and_breakpoints() -> None:
    contributes = json.loads((VSCODE / "package.json").read_text())["contributes"]
    assert contributes["breakpoints"] == [{"language": "webpipe"}]
    [debugger] = contributes["debuggers"]
    assert debugger["type"] == "webpipe" and debugger["languages"] == ["webpipe"]
    port = debugger["configurationAttributes"]["attach"]["properties"]["port"]
    assert port["default"] == DEFAULT_PORT
    [initial] = debugger["initialConfigurations"]
    assert (initial["type"], initial["request"], initial["port"]) == \
        ("webpipe", "attach", DEFAULT_PORT)
    assert debugger["configurationSnippets"][0]["body"] == initial


def test_extension_connects_the_debugger_type_to_the_port() -> None:
    source = (VSCODE / "extension.js").read_text()
    assert 'registerDebugAdapterDescriptorFactory("webpipe"' in source
    assert "new vscode.DebugAdapterServer(config.port || 5858" in source
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the syntax check needs it")
    subprocess.run([node, "--check", str(VSCODE / "extension.js")], check=True)
