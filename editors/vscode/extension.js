// Web Pipe for VS Code: the grammar is declared in package.json; this file only starts the
// language server (`webpipe lsp`, from `pip install 'webpipe[lsp]'`) over stdio.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

async function activate() {
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
