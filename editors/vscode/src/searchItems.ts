// codemlm.search results (docs/INTERFACES.md: [{uri, range, name, kind, score, snippet}]) as
// QuickPick rows. Server order is the ranking, so every row has alwaysShow: the QuickPick must not
// re-filter or hide hits by its own fuzzy match on the typed text.

export interface LspPosition {
  line: number;
  character: number;
}

export interface LspRange {
  start: LspPosition;
  end: LspPosition;
}

export interface SearchHit {
  uri: string;
  range: LspRange;
  name: string;
  kind: string;
  score: number;
  snippet: string;
}

export interface SearchItem {
  label: string;
  description: string;
  detail: string;
  alwaysShow: true;
  hit: SearchHit;
}

const KIND_ICONS: Record<string, string> = {
  function: 'symbol-function',
  method: 'symbol-method',
  class: 'symbol-class',
  block: 'symbol-namespace',
};

export const SNIPPET_MAX_CHARS = 120;

/** Validates one result from the server; throws on a shape the contract does not allow. */
export function parseHit(value: unknown): SearchHit {
  const v = value as Partial<SearchHit> | null;
  const range = v?.range;
  const ok =
    v !== null &&
    typeof v === 'object' &&
    typeof v.uri === 'string' &&
    typeof v.name === 'string' &&
    typeof range?.start?.line === 'number' &&
    typeof range?.start?.character === 'number' &&
    typeof range?.end?.line === 'number' &&
    typeof range?.end?.character === 'number';
  if (!ok) {
    throw new Error(`codemlm.search returned a malformed result: ${JSON.stringify(value)?.slice(0, 200)}`);
  }
  return {
    uri: v.uri as string,
    range: range as LspRange,
    name: v.name as string,
    kind: typeof v.kind === 'string' ? v.kind : 'block',
    score: typeof v.score === 'number' ? v.score : 0,
    snippet: typeof v.snippet === 'string' ? v.snippet : '',
  };
}

export function parseHits(value: unknown): SearchHit[] {
  if (value === null || value === undefined) {
    return [];
  }
  if (!Array.isArray(value)) {
    throw new Error(`codemlm.search returned ${typeof value}, expected a list`);
  }
  return value.map(parseHit);
}

/** The first non-blank lines of a snippet on one line, shortened for a QuickPick detail row. */
export function snippetLine(snippet: string, maxChars = SNIPPET_MAX_CHARS): string {
  const joined = snippet
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(' ⏎ ');
  return joined.length <= maxChars ? joined : `${joined.slice(0, maxChars - 1)}…`;
}

/**
 * One QuickPick row: `$(icon) name`, `path:line` (1-based, as editors show lines), the snippet.
 * `relativePath` turns a URI into a workspace-relative path (vscode.workspace.asRelativePath).
 */
export function toSearchItem(hit: SearchHit, relativePath: (uri: string) => string): SearchItem {
  const icon = KIND_ICONS[hit.kind] ?? 'symbol-misc';
  return {
    label: `$(${icon}) ${hit.name}`,
    description: `${relativePath(hit.uri)}:${hit.range.start.line + 1}`,
    detail: snippetLine(hit.snippet),
    alwaysShow: true,
    hit,
  };
}
