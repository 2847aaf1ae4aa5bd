import * as assert from 'node:assert/strict';
import { SEARCH_COMMAND, SHOW_LOG_COMMAND, StatusModel } from '../src/statusModel';
import { StatusBar } from '../src/statusBar';
import { createdStatusBarItems } from './fakeVscode';

describe('status bar model', () => {
  it('follows codemlm/status and $/progress through indexing to ready', () => {
    const m = new StatusModel();
    assert.match(m.view().text, /loading~spin/);
    m.setClientState('running');
    assert.equal(m.applyStatus({ state: 'indexing', message: 'walking the repository' }), true);
    assert.equal(m.view().text, '$(sync~spin) CodeMLM: indexing');
    m.applyProgress({ kind: 'begin', title: 'Indexing', percentage: 0 });
    m.applyProgress({ kind: 'report', message: '40/100 files', percentage: 40 });
    assert.equal(m.view().text, '$(sync~spin) CodeMLM: indexing 40%');
    assert.match(m.view().tooltip, /40\/100 files/);
    m.applyProgress({ kind: 'end' });
    m.applyStatus({ state: 'ready', message: '812 chunks' });
    const ready = m.view();
    assert.equal(ready.text, '$(check) CodeMLM');
    assert.equal(ready.command, SEARCH_COMMAND);
    assert.match(ready.tooltip, /812 chunks/);
  });

  it('treats progress before the first status as indexing', () => {
    const m = new StatusModel();
    m.setClientState('running');
    m.applyProgress({ kind: 'begin', title: 'Indexing', percentage: 12.4 });
    assert.equal(m.view().text, '$(sync~spin) CodeMLM: indexing 12%');
  });

  it('shows no-model as a warning that points at the setting', () => {
    const m = new StatusModel();
    m.setClientState('running');
    m.applyStatus({ state: 'no-model', message: 'no model directory found' });
    const v = m.view();
    assert.equal(v.text, '$(warning) CodeMLM: no model');
    assert.equal(v.severity, 'warning');
    assert.match(v.tooltip, /codemlm\.modelDir/);
    assert.equal(v.command, SHOW_LOG_COMMAND);
  });

  it('ignores notifications outside the contract', () => {
    const m = new StatusModel();
    m.setClientState('running');
    m.applyStatus({ state: 'ready', message: '' });
    assert.equal(m.applyStatus({ state: 'exploded' }), false);
    assert.equal(m.applyStatus(null), false);
    assert.equal(m.applyStatus('ready'), false);
    assert.equal(m.view().text, '$(check) CodeMLM');
  });

  it('shows a failed start as an error and forgets the server state', () => {
    const m = new StatusModel();
    m.setClientState('running');
    m.applyStatus({ state: 'ready', message: '' });
    m.setClientState('failed', 'No module named lsp_server');
    const v = m.view();
    assert.equal(v.severity, 'error');
    assert.match(v.tooltip, /No module named lsp_server/);
    m.setClientState('running');
    assert.match(m.view().text, /loading~spin/);
  });

  it('renders into a real status bar item (fake vscode)', () => {
    const bar = new StatusBar();
    const item = createdStatusBarItems[createdStatusBarItems.length - 1];
    assert.equal(item.visible, true);
    bar.model.setClientState('running');
    bar.model.applyStatus({ state: 'no-model', message: '' });
    bar.render();
    assert.equal(item.text, '$(warning) CodeMLM: no model');
    assert.equal(item.backgroundColor?.id, 'statusBarItem.warningBackground');
    bar.model.applyStatus({ state: 'ready', message: '' });
    bar.render();
    assert.equal(item.backgroundColor, undefined);
    assert.equal(item.command, SEARCH_COMMAND);
    bar.dispose();
    assert.equal(item.visible, false);
  });
});
