// The `codemlm.*` VS Code settings and the settings object the language server reads
// (docs/INTERFACES.md: initializationOptions and workspace/didChangeConfiguration, under `codemlm`).
// Pure: takes anything with a `get(key)` (vscode.WorkspaceConfiguration has one), so it is unit-tested
// without VS Code.

export const CONFIG_SECTION = 'codemlm';

/** What the server reads. Keys and nesting are the server's contract, not VS Code's. */
export interface ServerSettings {
  modelDir: string | null;
  completion: { enabled: boolean };
  inlineCompletion: { enabled: boolean };
  maxCandidates: number;
  indexPath: string | null;
  languages: string[] | null;
  repositoryContext: boolean;
  searchRerank: boolean;
}

/** The subset of vscode.WorkspaceConfiguration used here. */
export interface ConfigReader {
  get<T>(key: string): T | undefined;
}

export const DEFAULT_MAX_CANDIDATES = 5;
// The server caps candidates at 20 (lsp_server/options.py) and warns above it; cap here too.
export const MAX_CANDIDATES_LIMIT = 20;

/** An unset, null or blank string means "let the server decide" (null). */
function optionalString(value: unknown): string | null {
  if (typeof value !== 'string') {
    return null;
  }
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}

function flag(value: unknown, fallback: boolean): boolean {
  return typeof value === 'boolean' ? value : fallback;
}

function candidates(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return DEFAULT_MAX_CANDIDATES;
  }
  // settings.json accepts anything; the server wants a small positive integer.
  return Math.min(MAX_CANDIDATES_LIMIT, Math.max(1, Math.round(value)));
}

function languages(value: unknown): string[] | null {
  if (!Array.isArray(value)) {
    return null;
  }
  const names = value.filter((v): v is string => typeof v === 'string' && v.trim() !== '').map((v) => v.trim());
  return names.length === 0 ? null : names;
}

/** Reads the `codemlm` configuration section into the server's settings object. */
export function serverSettings(config: ConfigReader, expand: (path: string) => string = (p) => p): ServerSettings {
  const modelDir = optionalString(config.get('modelDir'));
  const indexPath = optionalString(config.get('indexPath'));
  return {
    modelDir: modelDir === null ? null : expand(modelDir),
    completion: { enabled: flag(config.get('completion.enabled'), true) },
    inlineCompletion: { enabled: flag(config.get('inlineCompletion.enabled'), true) },
    maxCandidates: candidates(config.get('maxCandidates')),
    indexPath: indexPath === null ? null : expand(indexPath),
    languages: languages(config.get('languages')),
    repositoryContext: flag(config.get('repositoryContext'), false),
    searchRerank: flag(config.get('searchRerank'), true),
  };
}

/** initializationOptions sent with `initialize`. */
export function initializationOptions(settings: ServerSettings): { codemlm: ServerSettings } {
  return { [CONFIG_SECTION]: settings } as { codemlm: ServerSettings };
}

/** Params of workspace/didChangeConfiguration. */
export function didChangeConfigurationParams(settings: ServerSettings): { settings: { codemlm: ServerSettings } } {
  return { settings: initializationOptions(settings) };
}

/** Settings whose change needs a new server process rather than a didChangeConfiguration. */
export const RESTART_KEYS: readonly string[] = ['interpreter'];

/** Most results the search picker asks for. */
export function searchResultCount(config: ConfigReader): number {
  const value = config.get<number>('search.maxResults');
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return 20;
  }
  return Math.min(200, Math.max(1, Math.round(value)));
}
