// Shows a StatusModel in a status bar item.
import * as vscode from 'vscode';
import { StatusModel } from './statusModel';

export class StatusBar implements vscode.Disposable {
  readonly model = new StatusModel();
  private readonly item: vscode.StatusBarItem;

  constructor() {
    this.item = vscode.window.createStatusBarItem('codemlm.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'CodeMLM';
    this.render();
    this.item.show();
  }

  /** Re-draws after a change to the model. */
  render(): void {
    const view = this.model.view();
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.command = view.command;
    this.item.backgroundColor =
      view.severity === 'error'
        ? new vscode.ThemeColor('statusBarItem.errorBackground')
        : view.severity === 'warning'
          ? new vscode.ThemeColor('statusBarItem.warningBackground')
          : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
