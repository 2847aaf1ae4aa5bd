// Starts, restarts and stops the codemlm language server (`<python> -m lsp_server`, stdio) and
// keeps the status bar and the server's settings in step with VS Code.
import * as vscode from 'vscode';
import {
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
  TransportKind,
} from 'vscode-languageclient/node';
import { describeSource, resolveInterpreter, ResolvedInterpreter, SERVER_ARGS } from './interpreter';
import { expandPath } from './paths';
import { preflight, preflightMessage } from './preflight';
import { pythonExtensionInterpreter } from './pythonEnv';
import { CONFIG_SECTION, didChangeConfigurationParams, initializationOptions, serverSettings, ServerSettings } from './settings';
import { IndexingNotice } from './indexingNotice';
import { DOCUMENT_LANGUAGES } from './languages';
import { StatusBar } from './statusBar';
import { ProgressValue } from './statusModel';

export const STATUS_NOTIFICATION = 'codemlm/status';

export class CodemlmServer implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private starting: Promise<void> | undefined;
  private interpreter: ResolvedInterpreter | undefined;

  constructor(
    private readonly output: vscode.LogOutputChannel,
    private readonly status: StatusBar,
    private readonly notice?: IndexingNotice,
  ) {}

  /** Re-draws the status bar, and says once per workspace that indexing has begun. */
  private statusChanged(): void {
    this.status.render();
    if (this.status.model.indexing) {
      this.notice?.onIndexing();
    }
  }

  get running(): boolean {
    return this.client?.state === State.Running;
  }

  /** Current settings for the server, with `~` and ${workspaceFolder} expanded. */
  settings(): ServerSettings {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    return serverSettings(vscode.workspace.getConfiguration(CONFIG_SECTION), (p) => expandPath(p, folder));
  }

  start(): Promise<void> {
    this.starting ??= this.doStart().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    this.status.model.setClientState('starting');
    this.status.render();
    const folder = vscode.workspace.workspaceFolders?.[0];
    const configured = vscode.workspace.getConfiguration(CONFIG_SECTION).get<string | null>('interpreter');
    const interpreter = await resolveInterpreter({
      configured: configured ? expandPath(configured, folder?.uri.fsPath) : configured,
      pythonExtension: () => pythonExtensionInterpreter(folder?.uri),
    });
    this.interpreter = interpreter;
    this.output.info(`interpreter: ${interpreter.command} (from ${describeSource(interpreter.source)})`);

    const check = await preflight(interpreter.command);
    if (!check.ok) {
      const message = preflightMessage(interpreter.command, check);
      this.output.error(message);
      this.status.model.setClientState('failed', message);
      this.status.render();
      void this.offerFix(message);
      return;
    }

    const serverOptions: ServerOptions = {
      command: interpreter.command,
      args: [...SERVER_ARGS],
      transport: TransportKind.stdio,
      options: { cwd: folder?.uri.fsPath, env: { ...process.env, PYTHONUNBUFFERED: '1' } },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: DOCUMENT_LANGUAGES.flatMap((language) => [
        { scheme: 'file', language },
        { scheme: 'untitled', language },
      ]),
      initializationOptions: initializationOptions(this.settings()),
      outputChannel: this.output,
      synchronize: {
        fileEvents: vscode.workspace.createFileSystemWatcher('**/*.{py,js,jsx,mjs,cjs,ts,tsx,go,rs,java,c,h,cc,cpp,cxx,hpp,hh}'),
      },
      middleware: {
        handleWorkDoneProgress: (token, params, next) => {
          this.status.model.applyProgress(params as ProgressValue);
          this.statusChanged();
          next(token, params);
        },
      },
    };
    const client = new LanguageClient('codemlm', 'CodeMLM', serverOptions, clientOptions);
    // Inline completion (LSP 3.18) is a built-in feature of vscode-languageclient 10: no
    // registerProposedFeatures() needed. (9.x had it as a proposed feature that sent the VS Code
    // trigger kind and selected-completion range unconverted, which a 3.18 server rejects.)
    client.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        this.status.model.setClientState('running');
      } else if (event.newState === State.Stopped) {
        this.status.model.setClientState('stopped');
      }
      this.status.render();
    });
    // Registered before start so the first status (sent right after `initialized`) is not lost.
    client.onNotification(STATUS_NOTIFICATION, (params: unknown) => {
      if (this.status.model.applyStatus(params)) {
        this.statusChanged();
      }
    });
    this.client = client;
    try {
      await client.start();
    } catch (error) {
      const message = `CodeMLM: the language server failed to start with ${interpreter.command}: ${errorText(error)}`;
      this.output.error(message);
      this.status.model.setClientState('failed', errorText(error));
      this.status.render();
      void this.offerFix(message);
      return;
    }
  }

  private async offerFix(message: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(message, 'Open Settings', 'Show Log');
    if (choice === 'Open Settings') {
      await vscode.commands.executeCommand('workbench.action.openSettings', 'codemlm.interpreter');
    } else if (choice === 'Show Log') {
      this.output.show(true);
    }
  }

  async stop(): Promise<void> {
    await this.starting?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) {
      try {
        await client.stop();
      } catch (error) {
        this.output.warn(`stopping the server: ${errorText(error)}`);
      }
    }
    this.status.model.setClientState('stopped');
    this.status.render();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Called on a settings change: a new interpreter needs a new process; the rest is a notification. */
  async onConfigurationChanged(event: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!event.affectsConfiguration(CONFIG_SECTION)) {
      return;
    }
    if (event.affectsConfiguration(`${CONFIG_SECTION}.interpreter`)) {
      await this.restart();
      return;
    }
    if (this.client !== undefined && this.running) {
      await this.client.sendNotification('workspace/didChangeConfiguration', didChangeConfigurationParams(this.settings()));
    }
  }

  /** workspace/executeCommand on the server; throws when the server is not running. */
  async executeCommand(command: string, args: unknown[], token?: vscode.CancellationToken): Promise<unknown> {
    await this.starting;
    const client = this.client;
    if (client === undefined || !this.running) {
      throw new Error('the CodeMLM language server is not running (see CodeMLM: Show Log)');
    }
    return client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args }, token);
  }

  /** LSP range of a VS Code range (0-based lines, UTF-16 columns on both sides). */
  protocolRange(range: vscode.Range): { start: { line: number; character: number }; end: { line: number; character: number } } {
    return { start: { line: range.start.line, character: range.start.character }, end: { line: range.end.line, character: range.end.character } };
  }

  get interpreterInUse(): ResolvedInterpreter | undefined {
    return this.interpreter;
  }

  dispose(): void {
    void this.stop();
  }
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
