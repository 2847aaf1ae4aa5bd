import * as assert from 'node:assert/strict';
import { didChangeConfigurationParams, initializationOptions, searchResultCount, serverSettings } from '../src/settings';
import { expandPath } from '../src/paths';

/** A configuration reader over a flat map of dotted keys, like vscode.WorkspaceConfiguration.get. */
function config(values: Record<string, unknown>) {
  return { get: <T>(key: string) => values[key] as T | undefined };
}

describe('settings → server settings', () => {
  it('defaults when nothing is set', () => {
    assert.deepEqual(serverSettings(config({})), {
      modelDir: null,
      completion: { enabled: true },
      inlineCompletion: { enabled: true },
      maxCandidates: 5,
      indexPath: null,
      languages: null,
      repositoryContext: false,
      searchRerank: true,
    });
  });

  it('maps every codemlm.* setting to the key and nesting the server reads', () => {
    const settings = serverSettings(
      config({
        modelDir: '/models/small',
        'completion.enabled': false,
        'inlineCompletion.enabled': false,
        maxCandidates: 3,
        indexPath: '/tmp/idx.sqlite',
        languages: ['python', 'go'],
        repositoryContext: true,
        searchRerank: false,
        interpreter: '/usr/bin/python3',
      }),
    );
    assert.deepEqual(settings, {
      modelDir: '/models/small',
      completion: { enabled: false },
      inlineCompletion: { enabled: false },
      maxCandidates: 3,
      indexPath: '/tmp/idx.sqlite',
      languages: ['python', 'go'],
      repositoryContext: true,
      searchRerank: false,
    });
    // The interpreter is the client's business; the server never sees it.
    assert.ok(!('interpreter' in settings));
  });

  it('turns blank paths into null and clamps bad numbers', () => {
    const settings = serverSettings(config({ modelDir: '  ', indexPath: '', maxCandidates: 1000, languages: [] }));
    assert.equal(settings.modelDir, null);
    assert.equal(settings.indexPath, null);
    assert.equal(settings.maxCandidates, 20);
    assert.equal(settings.languages, null);
    assert.equal(serverSettings(config({ maxCandidates: 0 })).maxCandidates, 1);
    assert.equal(serverSettings(config({ maxCandidates: 2.6 })).maxCandidates, 3);
    assert.equal(serverSettings(config({ maxCandidates: 'many' })).maxCandidates, 5);
    assert.equal(serverSettings(config({ 'completion.enabled': 'no' })).completion.enabled, true);
    assert.equal(serverSettings(config({ searchRerank: 'off' })).searchRerank, true);
  });

  it('expands paths with the given expander', () => {
    const settings = serverSettings(config({ modelDir: '~/m', indexPath: '${workspaceFolder}/.idx' }), (p) =>
      expandPath(p, '/repo', '/home/u'),
    );
    assert.equal(settings.modelDir, '/home/u/m');
    assert.equal(settings.indexPath, '/repo/.idx');
  });

  it('wraps the settings under `codemlm` for initialize and didChangeConfiguration', () => {
    const settings = serverSettings(config({ maxCandidates: 7 }));
    assert.deepEqual(initializationOptions(settings), { codemlm: settings });
    assert.deepEqual(didChangeConfigurationParams(settings), { settings: { codemlm: settings } });
  });

  it('bounds the search result count', () => {
    assert.equal(searchResultCount(config({})), 20);
    assert.equal(searchResultCount(config({ 'search.maxResults': 5 })), 5);
    assert.equal(searchResultCount(config({ 'search.maxResults': 10000 })), 200);
  });
});

describe('expandPath', () => {
  it('expands ~ and ${workspaceFolder}, leaves other paths alone', () => {
    assert.equal(expandPath('~', undefined, '/h'), '/h');
    assert.equal(expandPath('~/x/y', undefined, '/h'), '/h/x/y');
    assert.equal(expandPath('${workspaceFolder}/.venv/bin/python', '/w', '/h'), '/w/.venv/bin/python');
    assert.equal(expandPath('${workspaceFolder}/x', undefined, '/h'), '${workspaceFolder}/x');
    assert.equal(expandPath('/abs/~x', '/w', '/h'), '/abs/~x');
  });
});
