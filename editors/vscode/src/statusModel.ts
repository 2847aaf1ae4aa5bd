// What the status bar says, from the server's `codemlm/status` notification
// ({state: "indexing"|"ready"|"no-model", message}) and its $/progress reports while indexing,
// plus the client's own lifecycle (starting, stopped, failed). Pure, so it is unit-tested.

export type ServerState = 'indexing' | 'ready' | 'no-model';
export type ClientState = 'starting' | 'running' | 'stopped' | 'failed';

export interface StatusView {
  text: string;
  tooltip: string;
  /** Command id run when the item is clicked. */
  command: string;
  severity: 'normal' | 'warning' | 'error';
}

export interface ProgressBegin {
  kind: 'begin';
  title: string;
  message?: string;
  percentage?: number;
}
export interface ProgressReport {
  kind: 'report';
  message?: string;
  percentage?: number;
}
export interface ProgressEnd {
  kind: 'end';
  message?: string;
}
export type ProgressValue = ProgressBegin | ProgressReport | ProgressEnd;

export const SEARCH_COMMAND = 'codemlm.ui.search';
export const SHOW_LOG_COMMAND = 'codemlm.ui.showLog';

const SERVER_STATES: ReadonlySet<string> = new Set(['indexing', 'ready', 'no-model']);

export function isServerState(value: unknown): value is ServerState {
  return typeof value === 'string' && SERVER_STATES.has(value);
}

export class StatusModel {
  private client: ClientState = 'starting';
  private clientDetail = '';
  private server: ServerState | undefined;
  private serverMessage = '';
  private progressTitle: string | undefined;
  private progressMessage: string | undefined;
  private percentage: number | undefined;

  /** True while the running server indexes (by its status or its $/progress). */
  get indexing(): boolean {
    return this.client === 'running' && this.server === 'indexing';
  }

  setClientState(state: ClientState, detail = ''): void {
    this.client = state;
    this.clientDetail = detail;
    if (state !== 'running') {
      this.server = undefined;
      this.endProgress();
    }
  }

  /** Applies a `codemlm/status` notification; ignores states the contract does not name. */
  applyStatus(params: unknown): boolean {
    const p = params as { state?: unknown; message?: unknown } | null;
    if (p === null || typeof p !== 'object' || !isServerState(p.state)) {
      return false;
    }
    this.server = p.state;
    this.serverMessage = typeof p.message === 'string' ? p.message : '';
    if (p.state !== 'indexing') {
      this.endProgress();
    }
    return true;
  }

  /** Applies one $/progress value of a server-initiated work-done progress. */
  applyProgress(value: ProgressValue): void {
    switch (value.kind) {
      case 'begin':
        this.progressTitle = value.title;
        this.progressMessage = value.message;
        this.percentage = value.percentage;
        // Progress means the server is indexing even if its status notification comes later.
        if (this.server === undefined || this.server === 'ready') {
          this.server = 'indexing';
        }
        break;
      case 'report':
        if (value.message !== undefined) {
          this.progressMessage = value.message;
        }
        if (value.percentage !== undefined) {
          this.percentage = value.percentage;
        }
        break;
      case 'end':
        this.endProgress();
        break;
    }
  }

  private endProgress(): void {
    this.progressTitle = undefined;
    this.progressMessage = undefined;
    this.percentage = undefined;
  }

  view(): StatusView {
    switch (this.client) {
      case 'starting':
        return { text: '$(loading~spin) CodeMLM', tooltip: 'CodeMLM: starting the language server', command: SHOW_LOG_COMMAND, severity: 'normal' };
      case 'stopped':
        return { text: '$(circle-slash) CodeMLM', tooltip: 'CodeMLM: server stopped', command: SHOW_LOG_COMMAND, severity: 'warning' };
      case 'failed':
        return {
          text: '$(error) CodeMLM',
          tooltip: `CodeMLM: the server could not start${this.clientDetail ? ` — ${this.clientDetail}` : ''}`,
          command: SHOW_LOG_COMMAND,
          severity: 'error',
        };
      case 'running':
        break;
    }
    switch (this.server) {
      case 'indexing': {
        const pct = this.percentage === undefined ? '' : ` ${Math.round(this.percentage)}%`;
        const detail = this.progressMessage ?? this.serverMessage;
        return {
          text: `$(sync~spin) CodeMLM: indexing${pct}`,
          tooltip: `CodeMLM: ${this.progressTitle ?? 'indexing'}${detail ? ` — ${detail}` : ''}`,
          command: SHOW_LOG_COMMAND,
          severity: 'normal',
        };
      }
      case 'no-model':
        return {
          text: '$(warning) CodeMLM: no model',
          tooltip: `CodeMLM: no model${this.serverMessage ? ` — ${this.serverMessage}` : ''}. Set "codemlm.modelDir" or $CODEMLM_MODEL.`,
          command: SHOW_LOG_COMMAND,
          severity: 'warning',
        };
      case 'ready':
        return {
          text: '$(check) CodeMLM',
          tooltip: `CodeMLM: ready${this.serverMessage ? ` — ${this.serverMessage}` : ''}. Click to search the repository.`,
          command: SEARCH_COMMAND,
          severity: 'normal',
        };
      case undefined:
        return { text: '$(loading~spin) CodeMLM', tooltip: 'CodeMLM: server starting', command: SHOW_LOG_COMMAND, severity: 'normal' };
    }
  }
}
