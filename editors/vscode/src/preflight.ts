// Before starting the server, check that the interpreter exists and can import it, so a user gets
// one clear message with the fix instead of a language client stuck restarting a dying process.
import { spawn } from 'node:child_process';

export type PreflightResult =
  | { ok: true }
  | { ok: false; reason: 'interpreter-missing' | 'not-installed' | 'failed'; detail: string };

/** Imports the server package and its LSP dependency without starting anything. */
const PROBE = 'import lsp_server, pygls, codemlm';

export function preflight(python: string, env: NodeJS.ProcessEnv = process.env, timeoutMs = 20000): Promise<PreflightResult> {
  return new Promise((resolve) => {
    let stderr = '';
    let settled = false;
    const finish = (result: PreflightResult) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(result);
      }
    };
    let child;
    try {
      child = spawn(python, ['-c', PROBE], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      finish({ ok: false, reason: 'interpreter-missing', detail: String(err) });
      return;
    }
    const timer = setTimeout(() => {
      child.kill();
      finish({ ok: false, reason: 'failed', detail: `${python} did not answer within ${timeoutMs} ms` });
    }, timeoutMs);
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      const reason = err.code === 'ENOENT' || err.code === 'EACCES' ? 'interpreter-missing' : 'failed';
      finish({ ok: false, reason, detail: err.message });
    });
    child.on('close', (code) => {
      if (code === 0) {
        finish({ ok: true });
      } else if (/ModuleNotFoundError|No module named/.test(stderr)) {
        finish({ ok: false, reason: 'not-installed', detail: lastLine(stderr) });
      } else {
        finish({ ok: false, reason: 'failed', detail: lastLine(stderr) || `exit code ${code}` });
      }
    });
  });
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}

/**
 * How to install the server. codemlm is installed from a clone of its repository, never from a
 * package index (no package there is this project, and the name is open to anyone).
 */
export function installFix(python: string): string {
  return `Fix: in a clone of the codemlm repository run "bash scripts/setup-env.sh" and set "codemlm.interpreter" to its .venv/bin/python, or run ${python} -m pip install -e /path/to/codemlm.`;
}

/** The message shown to the user, with the command that fixes it. */
export function preflightMessage(python: string, result: Exclude<PreflightResult, { ok: true }>): string {
  switch (result.reason) {
    case 'interpreter-missing':
      return `CodeMLM: the Python interpreter "${python}" was not found. Set "codemlm.interpreter" to a Python that has codemlm installed. ${installFix(python)}`;
    case 'not-installed':
      return `CodeMLM: the language server is not installed for ${python} (${result.detail}). ${installFix(python)}`;
    case 'failed':
      return `CodeMLM: ${python} could not load the language server: ${result.detail}. See CodeMLM: Show Log.`;
  }
}
