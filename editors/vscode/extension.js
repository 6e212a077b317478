// Web Pipe for VS Code: the grammar, the debugger type and the breakpoints are declared in
// package.json; this file starts the language server (`webpipe lsp`, from
// `pip install 'webpipe[lsp]'`) over stdio and points the `webpipe` debugger at the DAP
// server of `webpipe serve --inspect` / `webpipe test --inspect` (TCP, port 5858 unless the
// launch configuration says otherwise).
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

// Attach: the program already runs with --inspect; VS Code connects to its port.
const debugAdapters = {
  createDebugAdapterDescriptor(session) {
    const config = session.configuration;
    return new vscode.DebugAdapterServer(config.port || 5858, config.host || "127.0.0.1");
  },
};

async function activate(context) {
  context.subscriptions.push(
    vscode.debug.registerDebugAdapterDescriptorFactory("webpipe", debugAdapters),
  );
  const config = vscode.workspace.getConfiguration("webpipe");
  if (!config.get("server.enabled", true)) {
    return;
  }
  const run = {
    command: config.get("server.command", "webpipe"),
    args: config.get("server.args", ["lsp"]),
  };
  client = new LanguageClient(
    "webpipe",
    "Web Pipe",
    { run, debug: run },
    {
      documentSelector: [{ language: "webpipe" }],
      // webpipe.checkDatabase: read at start, and again whenever the setting changes
      initializationOptions: { checkDatabase: config.get("checkDatabase", false) },
      synchronize: { configurationSection: "webpipe" },
    },
  );
  try {
    await client.start();
  } catch (err) {
    vscode.window.showWarningMessage(
      `Web Pipe: could not start "${run.command} ${run.args.join(" ")}" (${err.message}). ` +
        "Install it with pip install 'webpipe[lsp]' or set webpipe.server.command.",
    );
  }
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
