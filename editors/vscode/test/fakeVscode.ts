// A fake of the parts of the `vscode` API the tested modules touch. The test bundle aliases the
// `vscode` module to this file (esbuild.mjs --tests), so the modules run under plain mocha.
// It implements the real interfaces' behaviour that matters here (events fire to listeners,
// properties hold what was set), and records what a test needs to look at.

export class Disposable {
  constructor(private readonly fn: () => void) {}
  dispose(): void {
    this.fn();
  }
}

type Listener<T> = (value: T) => unknown;

export class EventEmitter<T> {
  private listeners = new Set<Listener<T>>();
  readonly event = (listener: Listener<T>): Disposable => {
    this.listeners.add(listener);
    return new Disposable(() => this.listeners.delete(listener));
  };
  fire(value: T): void {
    for (const listener of [...this.listeners]) {
      listener(value);
    }
  }
  get listenerCount(): number {
    return this.listeners.size;
  }
}

export interface QuickPickItem {
  label: string;
  description?: string;
  detail?: string;
  alwaysShow?: boolean;
}

export class FakeQuickPick<T extends QuickPickItem> {
  title: string | undefined;
  placeholder: string | undefined;
  matchOnDescription = false;
  matchOnDetail = false;
  value = '';
  selectedItems: readonly T[] = [];
  visible = false;
  disposed = false;
  /** Every value `busy` took, in order, to check the indicator went on and off. */
  readonly busyHistory: boolean[] = [];
  private _busy = false;
  private _items: readonly T[] = [];
  readonly itemsHistory: Array<readonly T[]> = [];

  private readonly changeValue = new EventEmitter<string>();
  private readonly acceptEmitter = new EventEmitter<void>();
  private readonly hideEmitter = new EventEmitter<void>();
  readonly onDidChangeValue = this.changeValue.event;
  readonly onDidAccept = this.acceptEmitter.event;
  readonly onDidHide = this.hideEmitter.event;

  get busy(): boolean {
    return this._busy;
  }
  set busy(value: boolean) {
    this._busy = value;
    this.busyHistory.push(value);
  }
  get items(): readonly T[] {
    return this._items;
  }
  set items(value: readonly T[]) {
    this._items = value;
    this.itemsHistory.push(value);
  }

  show(): void {
    this.visible = true;
  }
  hide(): void {
    if (this.visible) {
      this.visible = false;
      this.hideEmitter.fire();
    }
  }
  dispose(): void {
    this.disposed = true;
  }

  /** What a user does: type (VS Code fires onDidChangeValue on each keystroke) and accept. */
  type(value: string): void {
    this.value = value;
    this.changeValue.fire(value);
  }
  accept(index: number): void {
    this.selectedItems = [this._items[index]];
    this.acceptEmitter.fire();
  }
}

export const createdQuickPicks: Array<FakeQuickPick<QuickPickItem>> = [];

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export class FakeStatusBarItem {
  text = '';
  tooltip: string | undefined;
  command: string | undefined;
  name: string | undefined;
  backgroundColor: ThemeColor | undefined;
  visible = false;
  constructor(
    readonly id: string,
    readonly alignment: StatusBarAlignment,
    readonly priority: number,
  ) {}
  show(): void {
    this.visible = true;
  }
  hide(): void {
    this.visible = false;
  }
  dispose(): void {
    this.visible = false;
  }
}

export const createdStatusBarItems: FakeStatusBarItem[] = [];

export const window = {
  createQuickPick<T extends QuickPickItem>(): FakeQuickPick<T> {
    const qp = new FakeQuickPick<T>();
    createdQuickPicks.push(qp as unknown as FakeQuickPick<QuickPickItem>);
    return qp;
  },
  createStatusBarItem(id: string, alignment: StatusBarAlignment, priority: number): FakeStatusBarItem {
    const item = new FakeStatusBarItem(id, alignment, priority);
    createdStatusBarItems.push(item);
    return item;
  },
};
