import * as assert from 'node:assert/strict';
import { parseHits, snippetLine, toSearchItem } from '../src/searchItems';

const HIT = {
  uri: 'file:///repo/pkg/tokenize.py',
  range: { start: { line: 41, character: 0 }, end: { line: 60, character: 0 } },
  name: 'tokenize_line',
  kind: 'function',
  score: 0.83,
  snippet: 'def tokenize_line(line: str) -> list[str]:\n    """Split a line into tokens."""\n\n    return line.split()',
};

const relative = (uri: string) => uri.replace('file:///repo/', '');

describe('search result → QuickPickItem', () => {
  it('shows name, path:line (1-based) and the snippet, and always shows the row', () => {
    const item = toSearchItem(parseHits([HIT])[0], relative);
    assert.equal(item.label, '$(symbol-function) tokenize_line');
    assert.equal(item.description, 'pkg/tokenize.py:42');
    assert.equal(item.detail, 'def tokenize_line(line: str) -> list[str]: ⏎ """Split a line into tokens.""" ⏎ return line.split()');
    assert.equal(item.alwaysShow, true);
    assert.equal(item.hit.uri, HIT.uri);
  });

  it('keeps the server order', () => {
    const hits = ['c', 'a', 'b'].map((name, i) => ({ ...HIT, name, score: 1 - i / 10 }));
    assert.deepEqual(
      parseHits(hits).map((h) => toSearchItem(h, relative).label),
      ['$(symbol-function) c', '$(symbol-function) a', '$(symbol-function) b'],
    );
  });

  it('picks an icon per kind, with a fallback for kinds it does not know', () => {
    const label = (kind: string) => toSearchItem(parseHits([{ ...HIT, kind }])[0], relative).label;
    assert.equal(label('class'), '$(symbol-class) tokenize_line');
    assert.equal(label('method'), '$(symbol-method) tokenize_line');
    assert.equal(label('weird'), '$(symbol-misc) tokenize_line');
  });

  it('shortens long snippets to one line', () => {
    const line = snippetLine('x'.repeat(500));
    assert.equal(line.length, 120);
    assert.ok(line.endsWith('…'));
  });

  it('accepts null as no results and rejects shapes the contract does not allow', () => {
    assert.deepEqual(parseHits(null), []);
    assert.throws(() => parseHits({ results: [] }), /expected a list/);
    assert.throws(() => parseHits([{ uri: 'file:///x', name: 'f' }]), /malformed/);
    assert.throws(() => parseHits([{ ...HIT, range: { start: { line: '1' }, end: HIT.range.end } }]), /malformed/);
  });
});
