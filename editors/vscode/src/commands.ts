// The commands the extension contributes. Server commands (codemlm.search, codemlm.reindex,
// codemlm.fillSelection) are sent as workspace/executeCommand requests; the client's own command
// ids live under `codemlm.ui.` so they never collide with the ids the server registers.
import * as vscode from 'vscode';
import { CodemlmServer, errorText } from './server';
import { SearchPicker } from './searchPicker';
import { SearchHit } from './searchItems';
import { CONFIG_SECTION, searchResultCount } from './settings';

export const COMMANDS = {
  search: 'codemlm.ui.search',
  fillSelection: 'codemlm.ui.fillSelection',
  reindex: 'codemlm.ui.reindex',
  restartServer: 'codemlm.ui.restartServer',
  showLog: 'codemlm.ui.showLog',
} as const;

export function registerCommands(server: CodemlmServer, output: vscode.OutputChannel): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand(COMMANDS.search, (initialQuery?: string) => openSearch(server, initialQuery)),
    vscode.commands.registerCommand(COMMANDS.fillSelection, () => fillSelection(server)),
    vscode.commands.registerCommand(COMMANDS.reindex, () => reindex(server)),
    vscode.commands.registerCommand(COMMANDS.restartServer, () => server.restart()),
    vscode.commands.registerCommand(COMMANDS.showLog, () => output.show(true)),
  ];
}

function openSearch(server: CodemlmServer, initialQuery?: string): void {
  const editor = vscode.window.activeTextEditor;
  const selected = editor && !editor.selection.isEmpty ? editor.document.getText(editor.selection) : '';
  const picker = new SearchPicker({
    search: async (query, k, signal) => {
      const source = new vscode.CancellationTokenSource();
      signal.onCancel(() => source.cancel());
      try {
        return await server.executeCommand('codemlm.search', [{ query, k }], source.token);
      } finally {
        source.dispose();
      }
    },
    open: openHit,
    relativePath: (uri) => vscode.workspace.asRelativePath(vscode.Uri.parse(uri), false),
    maxResults: searchResultCount(vscode.workspace.getConfiguration(CONFIG_SECTION)),
  });
  picker.show(typeof initialQuery === 'string' ? initialQuery : selected.split('\n')[0] ?? '');
}

async function openHit(hit: SearchHit): Promise<void> {
  const start = new vscode.Position(hit.range.start.line, hit.range.start.character);
  const document = await vscode.workspace.openTextDocument(vscode.Uri.parse(hit.uri));
  await vscode.window.showTextDocument(document, {
    selection: new vscode.Range(start, start),
    preview: true,
  });
  vscode.window.activeTextEditor?.revealRange(new vscode.Range(start, start), vscode.TextEditorRevealType.InCenterIfOutsideViewport);
}

async function fillSelection(server: CodemlmServer): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (editor === undefined || editor.selection.isEmpty) {
    void vscode.window.showInformationMessage('CodeMLM: select the code to replace, then run Fill Selection.');
    return;
  }
  const args = [{ uri: editor.document.uri.toString(), range: server.protocolRange(editor.selection) }];
  try {
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: 'CodeMLM: filling selection…' },
      (_progress, token) => server.executeCommand('codemlm.fillSelection', args, token),
    );
    // The server applies the best candidate itself (workspace/applyEdit); an empty list means none.
    if (!Array.isArray(result) || result.length === 0) {
      void vscode.window.showInformationMessage('CodeMLM: no candidate for this selection.');
    }
  } catch (error) {
    void vscode.window.showErrorMessage(`CodeMLM: Fill Selection failed: ${errorText(error)}`);
  }
}

async function reindex(server: CodemlmServer): Promise<void> {
  try {
    await server.executeCommand('codemlm.reindex', []);
    void vscode.window.setStatusBarMessage('CodeMLM: reindex started', 3000);
  } catch (error) {
    void vscode.window.showErrorMessage(`CodeMLM: Reindex failed: ${errorText(error)}`);
  }
}
