// Tokenizes .wp files as VS Code does: vscode-textmate on the Oniguruma regex engine, with
// this extension's grammars (webpipe, jq) and, for the code it embeds, the SQL, Lua,
// Handlebars, HTML and GraphQL grammars that VS Code and common extensions ship (collected
// in tm-grammars). Prints JSON, {file: [[[start, end, scope, ...], ...] per line]}, which
// tests/test_textmate.py reads. Usage: node test/tokenize.js FILE...
"use strict";

const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const EXTENSION = path.join(__dirname, "..");
const OURS = {
  "source.webpipe": path.join(EXTENSION, "syntaxes", "webpipe.tmLanguage.json"),
  "source.jq": path.join(EXTENSION, "syntaxes", "jq.tmLanguage.json"),
};

async function grammarFiles() {
  const { grammars } = await import("tm-grammars");
  const folder = path.join(EXTENSION, "node_modules", "tm-grammars", "grammars");
  const files = {};
  for (const g of grammars) {
    files[g.scopeName] = path.join(folder, `${g.name}.json`);
  }
  return { ...files, ...OURS }; // ours win: the extension ships source.jq
}

async function registry() {
  const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.length));
  const files = await grammarFiles();
  return new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async (scope) => {
      const file = files[scope];
      return file ? vsctm.parseRawGrammar(fs.readFileSync(file, "utf8"), file) : null;
    },
  });
}

function tokenize(grammar, text) {
  let stack = vsctm.INITIAL;
  return text.split("\n").map((line) => {
    const result = grammar.tokenizeLine(line, stack);
    stack = result.ruleStack;
    return result.tokens.map((t) => [t.startIndex, Math.min(t.endIndex, line.length), ...t.scopes]);
  });
}

async function main(files) {
  const grammar = await (await registry()).loadGrammar("source.webpipe");
  const out = {};
  for (const file of files) {
    out[file] = tokenize(grammar, fs.readFileSync(file, "utf8").replace(/\r\n/g, "\n"));
  }
  process.stdout.write(JSON.stringify(out));
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err);
  process.exit(1);
});
