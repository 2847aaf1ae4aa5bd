// Says once per workspace, when the server starts indexing it, what is happening and where the
// index goes: indexing reads every source file and embeds it with the model, which a user should
// not discover from a busy CPU. The status bar item shows the progress itself.

/** The subset of vscode.Memento used here (ExtensionContext.workspaceState). */
export interface NoticeMemento {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): Thenable<void>;
}

export const NOTICE_KEY = 'codemlm.indexingNoticeShown';

export const INDEXING_MESSAGE =
  'CodeMLM is indexing this workspace for search and completion (progress in the status bar). ' +
  "The index is kept in codemlm's cache directory, never in your repository; later updates only read changed files.";

export class IndexingNotice {
  private shown: boolean;

  constructor(
    private readonly memento: NoticeMemento,
    private readonly show: (message: string) => void,
  ) {
    this.shown = memento.get<boolean>(NOTICE_KEY) === true;
  }

  /** Called whenever the status says indexing; shows the message the first time only. */
  onIndexing(): void {
    if (this.shown) {
      return;
    }
    this.shown = true;
    void this.memento.update(NOTICE_KEY, true);
    this.show(INDEXING_MESSAGE);
  }
}
