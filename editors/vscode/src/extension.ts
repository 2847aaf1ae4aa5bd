// Entry point: wires the pieces together on activation and tears them down on deactivation.
// Activation comes from opening a file of a language the server serves, or from running one of
// the commands (package.json activationEvents), never from merely opening a folder.
import * as vscode from 'vscode';
import { registerCommands } from './commands';
import { IndexingNotice } from './indexingNotice';
import { CodemlmServer } from './server';
import { StatusBar } from './statusBar';

let server: CodemlmServer | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('CodeMLM', { log: true });
  const status = new StatusBar();
  const notice = new IndexingNotice(context.workspaceState, (message) => {
    void vscode.window.showInformationMessage(message);
  });
  server = new CodemlmServer(output, status, notice);
  const s = server;
  context.subscriptions.push(
    output,
    status,
    ...registerCommands(s, output),
    vscode.workspace.onDidChangeConfiguration((event) => void s.onConfigurationChanged(event)),
  );
  // Not awaited: activation returns at once; commands wait for the start that is in flight.
  void s.start();
}

export async function deactivate(): Promise<void> {
  await server?.stop();
  server = undefined;
}
