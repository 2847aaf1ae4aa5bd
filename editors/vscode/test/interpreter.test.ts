import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_PYTHON, resolveInterpreter } from '../src/interpreter';
import { preflight, preflightMessage } from '../src/preflight';

describe('interpreter resolution order', () => {
  it('prefers the codemlm.interpreter setting over the Python extension', async () => {
    let asked = false;
    const resolved = await resolveInterpreter({
      configured: '/opt/py/bin/python',
      pythonExtension: async () => {
        asked = true;
        return '/from/extension/python';
      },
    });
    assert.deepEqual(resolved, { command: '/opt/py/bin/python', source: 'setting' });
    assert.equal(asked, false, 'the Python extension is not consulted when the setting is set');
  });

  it("uses the Python extension's environment when the setting is blank", async () => {
    for (const configured of [null, undefined, '', '   ']) {
      const resolved = await resolveInterpreter({ configured, pythonExtension: async () => '/venv/bin/python' });
      assert.deepEqual(resolved, { command: '/venv/bin/python', source: 'python-extension' });
    }
  });

  it('falls back to python3 when the extension is absent, empty or broken', async () => {
    const cases: Array<() => Promise<string | undefined>> = [
      async () => undefined,
      async () => '  ',
      async () => {
        throw new Error('extension failed to activate');
      },
    ];
    for (const pythonExtension of cases) {
      assert.deepEqual(await resolveInterpreter({ configured: null, pythonExtension }), {
        command: DEFAULT_PYTHON,
        source: 'default',
      });
    }
  });
});

describe('preflight (real processes)', function () {
  this.timeout(30000);

  it('reports a missing interpreter with the setting to change', async () => {
    const result = await preflight('/nonexistent/bin/python3');
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.equal(result.reason, 'interpreter-missing');
      assert.match(preflightMessage('/nonexistent/bin/python3', result), /codemlm\.interpreter/);
    }
  });

  it('reports a Python without codemlm with the install from the repository that fixes it', async function () {
    // `-I` isolates from PYTHONPATH and user site: a Python that surely has no lsp_server.
    const python = '/usr/bin/python3';
    if (!existsSync(python)) {
      this.skip();
    }
    const result = await preflight(python, { PATH: '/usr/bin:/bin', PYTHONNOUSERSITE: '1', PYTHONSAFEPATH: '1' });
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.equal(result.reason, 'not-installed');
      const message = preflightMessage(python, result);
      assert.match(message, /scripts\/setup-env\.sh/);
      assert.match(message, /-m pip install -e \/path\/to\/codemlm/);
      // Never a package-index name: `pip install codemlm[lsp]` fails, or installs a stranger's package.
      assert.doesNotMatch(message, /codemlm\[/);
    }
  });

  it('accepts the project virtualenv when it has the server installed', async function () {
    const python = path.resolve(__dirname, '../../../../.venv/bin/python');
    if (!existsSync(python)) {
      this.skip();
    }
    const result = await preflight(python);
    if (!result.ok && result.reason === 'not-installed') {
      this.skip(); // the language server package is not in this environment yet
    }
    assert.deepEqual(result, { ok: true });
  });
});
