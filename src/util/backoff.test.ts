import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { Backoff, sleep } from './backoff.js';
import { FakeClock } from '../../test/support/fake-clock.js';

/** A repeatable stand-in for Math.random. */
function seq(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length];
}

const take = (b: Backoff, n: number) => Array.from({ length: n }, () => b.next());

describe('Backoff', () => {
  it('grows by the factor up to the cap; reset() starts over; attempts counts next() calls', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 3000 });
    assert.deepEqual(take(b, 7), [100, 200, 400, 800, 1600, 3000, 3000]);
    assert.equal(b.attempts, 7);
    b.reset();
    assert.equal(b.attempts, 0);
    assert.deepEqual(take(b, 2), [100, 200]);
  });

  it('factor 1 is a constant delay; the first delay is not capped', () => {
    assert.deepEqual(take(new Backoff({ initialMs: 5000, maxMs: 5000, factor: 1 }), 3), [5000, 5000, 5000]);
    assert.deepEqual(take(new Backoff({ initialMs: 90_000, maxMs: 60_000 }), 2), [90_000, 60_000]);
  });

  it('jitter spreads each delay over [1 - j, 1 + j] of the base; capJitter also caps the result', () => {
    const low = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5, random: () => 0 });
    assert.equal(low.next(), 500);
    const high = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5, random: () => 0.75 });
    assert.equal(high.next(), 1250, 'over maxMs by the jitter: client-go style');
    const capped = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5, random: () => 1, capJitter: true });
    assert.equal(capped.next(), 1000);
    const mid = new Backoff({ initialMs: 1000, maxMs: 8000, jitter: 0.5, random: () => 0.5 });
    assert.deepEqual(take(mid, 3), [1000, 2000, 4000], 'jitter does not feed into the growth');
  });

  // The four loops moved onto Backoff with the delays they had. Each case is the loop's former
  // formula, run beside the Backoff configuration that replaced it, on the same random draws.
  it('reproduces the delays of the loops it replaced', () => {
    const draws = [0.13, 0.97, 0.5, 0.01, 0.66, 0.42, 0.88, 0.25, 0.73, 0.05, 0.31, 0.59];
    // informer: sleep(b * (0.8 + r * 0.4)); b = min(max, b * 2)
    {
      const r = seq(draws); let b = 100; const old: number[] = [];
      for (let i = 0; i < 12; i++) { old.push(b * (0.8 + r() * 0.4)); b = Math.min(3000, b * 2); }
      const now = take(new Backoff({ initialMs: 100, maxMs: 3000, jitter: 0.2, random: seq(draws) }), 12);
      now.forEach((v, i) => assert.ok(Math.abs(v - old[i]) < 1e-9, `informer #${i}: ${v} vs ${old[i]}`));
    }
    // member claim: setTimeout(b * (0.8 + r * 0.4)); b = min(5000, b * 2)
    {
      const r = seq(draws); let b = 100; const old: number[] = [];
      for (let i = 0; i < 12; i++) { old.push(b * (0.8 + r() * 0.4)); b = Math.min(5000, b * 2); }
      const now = take(new Backoff({ initialMs: 100, maxMs: 5000, jitter: 0.2, random: seq(draws) }), 12);
      now.forEach((v, i) => assert.ok(Math.abs(v - old[i]) < 1e-9, `member #${i}: ${v} vs ${old[i]}`));
    }
    // registration: failures++; min(250 * 2 ** min(failures, 3), 2000)
    {
      const old = Array.from({ length: 6 }, (_, i) => Math.min(250 * 2 ** Math.min(i + 1, 3), 2000));
      assert.deepEqual(take(new Backoff({ initialMs: 500, maxMs: 2000 }), 6), old);
    }
    // resiliency exponential: wait = min(max, p * (0.5 + r)); p = min(max, p * 1.5)
    {
      const r = seq(draws); let p = 500; const old: number[] = [];
      for (let i = 0; i < 12; i++) { old.push(Math.min(4000, p * (0.5 + r()))); p = Math.min(4000, p * 1.5); }
      const now = take(new Backoff({ initialMs: 500, maxMs: 4000, factor: 1.5, jitter: 0.5, capJitter: true, random: seq(draws) }), 12);
      now.forEach((v, i) => assert.ok(Math.abs(v - old[i]) < 1e-9, `resiliency #${i}: ${v} vs ${old[i]}`));
    }
  });
});

describe('sleep', () => {
  it('resolves when the clock reaches the delay, not before', async () => {
    const clock = new FakeClock();
    let done = false;
    const p = sleep(1000, undefined, clock).then(() => { done = true; });
    clock.advance(999);
    await Promise.resolve();
    assert.equal(done, false);
    clock.advance(1);
    await p;
    assert.equal(done, true);
    assert.equal(clock.pending, 0);
  });

  it('an abort wakes it at once, clears its timer and removes its listener', async () => {
    const clock = new FakeClock();
    const ac = new AbortController();
    const p = sleep(60_000, ac.signal, clock);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    ac.abort();
    await p;
    assert.equal(clock.pending, 0);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });

  it('an already aborted signal resolves without arming a timer', async () => {
    const clock = new FakeClock();
    await sleep(60_000, AbortSignal.abort(), clock);
    assert.equal(clock.armed.length, 0);
  });

  it('1,000 sleeps that run out on one long-lived signal leave no listener behind', async () => {
    const clock = new FakeClock();
    const ac = new AbortController();
    for (let i = 0; i < 1000; i++) {
      const p = sleep(100, ac.signal, clock);
      assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
      clock.advance(100);
      await p;
    }
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });
});
