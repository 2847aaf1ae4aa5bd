import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { DOCUMENT_LANGUAGES } from '../src/languages';
import { INDEXING_MESSAGE, IndexingNotice, NOTICE_KEY, NoticeMemento } from '../src/indexingNotice';
import { serverSettings } from '../src/settings';
import { StatusModel } from '../src/statusModel';

// out/test/manifest.test.js -> editors/vscode/package.json
const manifest = JSON.parse(readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8'));

describe('activation', () => {
  it('activates for the languages the client serves, not for every folder with code in it', () => {
    const events: string[] = manifest.activationEvents;
    assert.deepEqual(
      [...events].sort(),
      DOCUMENT_LANGUAGES.map((language) => `onLanguage:${language}`).sort(),
    );
    // Commands activate the extension by themselves (VS Code 1.74+): every command is contributed.
    assert.ok(manifest.engines.vscode.startsWith('^1.') && Number(manifest.engines.vscode.split('.')[1]) >= 74);
  });
});

describe('settings in the Settings UI', () => {
  const properties: Record<string, { type: unknown; default: unknown }> = manifest.contributes.configuration.properties;

  it('gives every setting one type and a non-null default, so the Settings UI can edit it', () => {
    for (const [key, schema] of Object.entries(properties)) {
      assert.equal(typeof schema.type, 'string', `${key}: a type list (e.g. ["string", "null"]) is JSON-only`);
      assert.notEqual(schema.default, null, `${key}: a null default is JSON-only`);
    }
  });

  it('maps the manifest defaults to "unset" for the server', () => {
    const defaults = new Map(Object.entries(properties).map(([key, schema]) => [key.replace(/^codemlm\./, ''), schema.default]));
    assert.equal(defaults.get('interpreter'), '');
    assert.deepEqual(serverSettings({ get: <T>(key: string) => defaults.get(key) as T | undefined }), {
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
});

class MapMemento implements NoticeMemento {
  readonly values = new Map<string, unknown>();
  get<T>(key: string): T | undefined {
    return this.values.get(key) as T | undefined;
  }
  update(key: string, value: unknown): Thenable<void> {
    this.values.set(key, value);
    return Promise.resolve();
  }
}

describe('indexing notice', () => {
  it('says once per workspace that indexing started, and remembers it', () => {
    const memento = new MapMemento();
    const shown: string[] = [];
    const notice = new IndexingNotice(memento, (m) => shown.push(m));
    notice.onIndexing();
    notice.onIndexing();
    assert.deepEqual(shown, [INDEXING_MESSAGE]);
    assert.equal(memento.get(NOTICE_KEY), true);
    // A new window on the same workspace (same workspaceState) stays quiet.
    new IndexingNotice(memento, (m) => shown.push(m)).onIndexing();
    assert.equal(shown.length, 1);
  });

  it('is driven by the status model: indexing only while the server runs and indexes', () => {
    const m = new StatusModel();
    assert.equal(m.indexing, false);
    m.setClientState('running');
    assert.equal(m.indexing, false);
    m.applyProgress({ kind: 'begin', title: 'Indexing', percentage: 0 });
    assert.equal(m.indexing, true);
    m.applyStatus({ state: 'ready', message: '' });
    assert.equal(m.indexing, false);
    m.applyStatus({ state: 'indexing', message: '' });
    m.setClientState('stopped');
    assert.equal(m.indexing, false);
  });
});
