// Starts `archon lsp` (stdio) for .pipe files. Settings: archon.server.command, archon.server.args.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

async function activate(context) {
  const config = vscode.workspace.getConfiguration("archon.server");
  const command = config.get("command", "archon");
  const args = ["lsp", ...config.get("args", [])];
  const serverOptions = {
    run: { command, args, transport: TransportKind.stdio },
    debug: { command, args, transport: TransportKind.stdio },
  };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "pipe" }, { scheme: "untitled", language: "pipe" }],
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.pipe") },
  };
  client = new LanguageClient("archon", "Archon .pipe language server", serverOptions, clientOptions);
  context.subscriptions.push(
    vscode.commands.registerCommand("archon.restartServer", () => client.restart()),
  );
  try {
    await client.start();
  } catch (error) {
    vscode.window.showErrorMessage(
      `Could not start \`${command} lsp\`: ${error}. Install archon with the lsp extra ` +
        "(pip install 'archon-pipe[lsp]') or set archon.server.command.",
    );
  }
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
