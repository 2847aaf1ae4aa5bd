// CodeMLM: Search Repository — a QuickPick that asks the server (codemlm.search) as the user types,
// debounced, with the busy indicator on while a query is in flight, rows in the server's order.
import * as vscode from 'vscode';
import { LatestOnly, RunSignal, Clock, realClock } from './debounce';
import { SearchHit, SearchItem, parseHits, toSearchItem } from './searchItems';

export interface SearchPickerDeps {
  /** Sends workspace/executeCommand codemlm.search; rejects on a server error. */
  search(query: string, k: number, signal: RunSignal): Promise<unknown>;
  /** Opens the hit's file with the hit's range selected. */
  open(hit: SearchHit): Promise<void>;
  relativePath(uri: string): string;
  maxResults: number;
  delayMs?: number;
  clock?: Clock;
}

export const SEARCH_DEBOUNCE_MS = 200;
/** Queries shorter than this are not sent: one letter matches everything and helps no one. */
export const MIN_QUERY_CHARS = 2;

type Row = SearchItem | vscode.QuickPickItem;

export class SearchPicker implements vscode.Disposable {
  readonly quickPick: vscode.QuickPick<Row>;
  private readonly runner: LatestOnly<SearchItem[]>;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly deps: SearchPickerDeps) {
    const qp = vscode.window.createQuickPick<Row>();
    qp.title = 'CodeMLM: Search Repository';
    qp.placeholder = 'Describe the code you are looking for, or paste some code';
    // The server ranks; the QuickPick must show rows even when the label does not contain the text.
    qp.matchOnDescription = true;
    qp.matchOnDetail = true;
    this.quickPick = qp;
    this.runner = new LatestOnly<SearchItem[]>(
      async (query, signal) => {
        const raw = await deps.search(query, deps.maxResults, signal);
        return parseHits(raw).map((hit) => toSearchItem(hit, deps.relativePath));
      },
      {
        onStart: () => {
          qp.busy = true;
        },
        onResult: (query, items) => {
          qp.items = items.length > 0 ? items : [message(`No results for "${query}"`)];
        },
        onError: (_query, error) => {
          qp.items = [message('$(error) Search failed', error instanceof Error ? error.message : String(error))];
        },
        onIdle: () => {
          qp.busy = false;
        },
      },
      deps.delayMs ?? SEARCH_DEBOUNCE_MS,
      deps.clock ?? realClock,
    );
    this.disposables.push(
      qp.onDidChangeValue((value) => this.onInput(value)),
      qp.onDidAccept(() => void this.accept()),
      qp.onDidHide(() => this.dispose()),
    );
  }

  show(initialQuery = ''): void {
    this.quickPick.value = initialQuery;
    this.quickPick.show();
    this.onInput(initialQuery);
  }

  private onInput(value: string): void {
    const query = value.trim();
    if (query.length < MIN_QUERY_CHARS) {
      this.runner.cancel();
      this.quickPick.items = [];
      this.quickPick.busy = false;
      return;
    }
    this.quickPick.busy = true;
    this.runner.push(query);
  }

  private async accept(): Promise<void> {
    const selected = this.quickPick.selectedItems[0];
    if (selected === undefined || !('hit' in selected)) {
      return;
    }
    this.quickPick.hide();
    await this.deps.open(selected.hit);
  }

  dispose(): void {
    this.runner.dispose();
    for (const d of this.disposables.splice(0)) {
      d.dispose();
    }
    this.quickPick.dispose();
  }
}

function message(label: string, detail?: string): vscode.QuickPickItem {
  return { label, detail, alwaysShow: true };
}
