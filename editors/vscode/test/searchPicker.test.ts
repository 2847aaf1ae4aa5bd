import * as assert from 'node:assert/strict';
import { SearchPicker } from '../src/searchPicker';
import { SearchHit } from '../src/searchItems';
import { deferred, FakeClock, flush } from './fakeClock';
import { FakeQuickPick, QuickPickItem } from './fakeVscode';

function hit(name: string, line: number): SearchHit {
  return {
    uri: `file:///repo/${name}.py`,
    range: { start: { line, character: 0 }, end: { line: line + 3, character: 0 } },
    name,
    kind: 'function',
    score: 0.5,
    snippet: `def ${name}():\n    pass`,
  };
}

describe('Search Repository QuickPick (fake vscode)', () => {
  function setup() {
    const clock = new FakeClock();
    const requests: Array<{ query: string; k: number }> = [];
    const answers: Array<ReturnType<typeof deferred<unknown>>> = [];
    const opened: SearchHit[] = [];
    const picker = new SearchPicker({
      search: (query, k) => {
        requests.push({ query, k });
        const d = deferred<unknown>();
        answers.push(d);
        return d.promise;
      },
      open: async (h) => {
        opened.push(h);
      },
      relativePath: (uri) => uri.replace('file:///repo/', ''),
      maxResults: 7,
      delayMs: 200,
      clock,
    });
    const qp = picker.quickPick as unknown as FakeQuickPick<QuickPickItem & { hit?: SearchHit }>;
    return { clock, requests, answers, opened, picker, qp };
  }

  it('queries the server once the typing pauses, with the busy indicator on until the answer', async () => {
    const s = setup();
    s.picker.show();
    assert.equal(s.qp.visible, true);
    s.qp.type('pa');
    s.qp.type('parse conf');
    assert.equal(s.qp.busy, true, 'busy as soon as the user types');
    await s.clock.advance(199);
    assert.deepEqual(s.requests, []);
    await s.clock.advance(1);
    assert.deepEqual(s.requests, [{ query: 'parse conf', k: 7 }]);
    assert.equal(s.qp.busy, true);
    s.answers[0].resolve([hit('parse_config', 9), hit('load', 2)]);
    await flush();
    assert.equal(s.qp.busy, false);
    assert.deepEqual(
      s.qp.items.map((i) => [i.label, i.description, i.alwaysShow]),
      [
        ['$(symbol-function) parse_config', 'parse_config.py:10', true],
        ['$(symbol-function) load', 'load.py:3', true],
      ],
    );
  });

  it('never shows results of a stale query', async () => {
    const s = setup();
    s.picker.show();
    s.qp.type('read');
    await s.clock.advance(200);
    s.qp.type('read file');
    await s.clock.advance(200);
    s.answers[1].resolve([hit('read_file', 0)]);
    await flush();
    s.answers[0].resolve([hit('read', 0)]);
    await flush();
    assert.deepEqual(
      s.qp.items.map((i) => i.label),
      ['$(symbol-function) read_file'],
    );
  });

  it('opens the accepted hit and closes', async () => {
    const s = setup();
    s.picker.show('tokenize');
    await s.clock.advance(200);
    s.answers[0].resolve([hit('tokenize', 4), hit('detokenize', 8)]);
    await flush();
    s.qp.accept(1);
    await flush();
    assert.deepEqual(s.opened.map((h) => h.name), ['detokenize']);
    assert.equal(s.qp.visible, false);
    assert.equal(s.qp.disposed, true);
  });

  it('shows "no results" and server errors as rows instead of failing silently', async () => {
    const s = setup();
    s.picker.show();
    s.qp.type('zzz');
    await s.clock.advance(200);
    s.answers[0].resolve([]);
    await flush();
    assert.deepEqual(s.qp.items.map((i) => i.label), ['No results for "zzz"']);
    s.qp.type('zzzz');
    await s.clock.advance(200);
    s.answers[1].reject(new Error('index is locked'));
    await flush();
    assert.equal(s.qp.items[0].label, '$(error) Search failed');
    assert.equal(s.qp.items[0].detail, 'index is locked');
    assert.equal(s.qp.busy, false);
    // Accepting a message row opens nothing.
    s.qp.accept(0);
    await flush();
    assert.deepEqual(s.opened, []);
  });

  it('does not query for erased or one-letter input, and clears the list', async () => {
    const s = setup();
    s.picker.show();
    s.qp.type('pars');
    s.qp.type('p');
    await s.clock.advance(1000);
    assert.deepEqual(s.requests, []);
    assert.deepEqual(s.qp.items, []);
    assert.equal(s.qp.busy, false);
  });
});
