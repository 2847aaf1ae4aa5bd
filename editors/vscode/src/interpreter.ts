// Which Python runs the server: the `codemlm.interpreter` setting, else the Python extension's
// active environment (when that extension is installed), else `python3` on PATH.
// The order is the contract; the lookups are injected so it is unit-tested without VS Code.

export type InterpreterSource = 'setting' | 'python-extension' | 'default';

export interface ResolvedInterpreter {
  command: string;
  source: InterpreterSource;
}

export interface InterpreterLookups {
  /** The `codemlm.interpreter` setting, already `~`-expanded; blank means unset. */
  configured: string | null | undefined;
  /** The Python extension's active interpreter, or undefined when it is absent or has none. */
  pythonExtension: () => Promise<string | undefined>;
}

export const DEFAULT_PYTHON = 'python3';

export async function resolveInterpreter(lookups: InterpreterLookups): Promise<ResolvedInterpreter> {
  const configured = lookups.configured?.trim();
  if (configured) {
    return { command: configured, source: 'setting' };
  }
  let fromExtension: string | undefined;
  try {
    fromExtension = (await lookups.pythonExtension())?.trim();
  } catch {
    // A broken or still-loading Python extension must not keep codemlm from starting.
    fromExtension = undefined;
  }
  if (fromExtension) {
    return { command: fromExtension, source: 'python-extension' };
  }
  return { command: DEFAULT_PYTHON, source: 'default' };
}

/** Arguments that start the language server on stdio with a given interpreter. */
export const SERVER_ARGS: readonly string[] = ['-m', 'lsp_server'];

export function describeSource(source: InterpreterSource): string {
  switch (source) {
    case 'setting':
      return 'the codemlm.interpreter setting';
    case 'python-extension':
      return "the Python extension's active environment";
    case 'default':
      return 'the default (python3 on PATH)';
  }
}
