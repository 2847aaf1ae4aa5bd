import * as assert from 'node:assert/strict';
import { LatestOnly, RunSignal } from '../src/debounce';
import { deferred, FakeClock, flush } from './fakeClock';

describe('LatestOnly (debounce + latest answer wins)', () => {
  function harness(delay = 200) {
    const clock = new FakeClock();
    const calls: string[] = [];
    const answers = new Map<string, ReturnType<typeof deferred<string>>>();
    const signals = new Map<string, RunSignal>();
    const results: Array<[string, string]> = [];
    const errors: string[] = [];
    let idle = 0;
    let started = 0;
    const runner = new LatestOnly<string>(
      (input, signal) => {
        calls.push(input);
        signals.set(input, signal);
        const d = deferred<string>();
        answers.set(input, d);
        return d.promise;
      },
      {
        onStart: () => started++,
        onResult: (input, result) => results.push([input, result]),
        onError: (input) => errors.push(input),
        onIdle: () => idle++,
      },
      delay,
      clock,
    );
    return { clock, calls, answers, signals, results, errors, runner, idle: () => idle, started: () => started };
  }

  it('waits for the quiet period and runs once for a burst of keystrokes', async () => {
    const h = harness();
    for (const text of ['p', 'pa', 'par', 'pars', 'parse']) {
      h.runner.push(text);
      await h.clock.advance(50);
    }
    assert.deepEqual(h.calls, []);
    await h.clock.advance(200);
    assert.deepEqual(h.calls, ['parse']);
    h.answers.get('parse')!.resolve('R');
    await flush();
    assert.deepEqual(h.results, [['parse', 'R']]);
    assert.equal(h.idle(), 1);
  });

  it('drops the answer to an older query that arrives after a newer one was sent', async () => {
    const h = harness();
    h.runner.push('pars');
    await h.clock.advance(200);
    h.runner.push('parse');
    assert.equal(h.signals.get('pars')!.cancelled, true, 'the request in flight is cancelled');
    await h.clock.advance(200);
    h.answers.get('parse')!.resolve('new');
    h.answers.get('pars')!.resolve('old');
    await flush();
    assert.deepEqual(h.results, [['parse', 'new']]);
  });

  it('reports errors of the latest run only, and not those of cancelled runs', async () => {
    const h = harness();
    h.runner.push('a1');
    await h.clock.advance(200);
    h.runner.push('a2');
    await h.clock.advance(200);
    h.answers.get('a1')!.reject(new Error('cancelled'));
    h.answers.get('a2')!.reject(new Error('server error'));
    await flush();
    assert.deepEqual(h.errors, ['a2']);
  });

  it('cancel() drops pending input and is reusable; dispose() stops everything', async () => {
    const h = harness();
    h.runner.push('abc');
    h.runner.cancel();
    await h.clock.advance(500);
    assert.deepEqual(h.calls, []);
    h.runner.push('def');
    await h.clock.advance(200);
    assert.deepEqual(h.calls, ['def']);
    h.runner.dispose();
    h.answers.get('def')!.resolve('late');
    h.runner.push('ghi');
    await h.clock.advance(500);
    assert.deepEqual(h.results, []);
    assert.deepEqual(h.calls, ['def']);
  });
});
