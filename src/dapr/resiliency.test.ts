import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubeObject } from '../api/types.js';
import { CrossmeshError } from '../errors.js';
import { CircuitBreaker, compileResiliency, parseTrip } from './resiliency.js';

const res = (name: string, spec: any, scopes?: string[]): KubeObject => ({ apiVersion: 'dapr.io/v1alpha1', kind: 'Resiliency', metadata: { name, namespace: 'ns' }, spec, ...(scopes ? { scopes } : {}) });
const fail = () => Promise.reject(new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', 'down'));

test('retry: constant re-runs fn maxRetries times, then throws the last error', async () => {
  const c = compileResiliency([res('r', { policies: { retries: { r3: { policy: 'constant', duration: '5ms', maxRetries: 3 } } }, targets: { components: { s: { outbound: { retry: 'r3' } } } } })]);
  let calls = 0;
  await assert.rejects(c.forComponent('s')!.run(() => { calls++; return fail(); }), /down/);
  assert.equal(calls, 4);
  calls = 0;
  assert.equal(await c.forComponent('s')!.run(async () => { if (++calls < 3) throw new Error('flaky'); return 'ok'; }), 'ok');
  assert.equal(calls, 3);
  assert.equal(c.forComponent('other'), undefined);
});

test('retry: exponential waits grow and stay under maxInterval; permanent (4xx) errors are not retried', async () => {
  const c = compileResiliency([res('r', { policies: { retries: { e: { policy: 'exponential', duration: '10ms', maxInterval: '30ms', maxRetries: 4 } } }, targets: { apps: { app1: { retry: 'e' } } } })]);
  const p = c.forApp('app1')!;
  const t0 = Date.now();
  let calls = 0;
  await assert.rejects(p.run(() => { calls++; return fail(); }));
  assert.equal(calls, 5);
  const took = Date.now() - t0;
  assert.ok(took >= 20 && took < 400, `took ${took} ms`);
  calls = 0;
  await assert.rejects(p.run(() => { calls++; return Promise.reject(new CrossmeshError('CM_ERR_ETAG_MISMATCH', 'etag')); }), /etag/);
  assert.equal(calls, 1);
});

test('timeout: per attempt, aborts the signal, CM_ERR_TIMEOUT', async () => {
  const c = compileResiliency([res('r', { policies: { timeouts: { t: '30ms' } }, targets: { components: { s: { outbound: { timeout: 't' } } } } })]);
  let aborted = false;
  const err = await c.forComponent('s')!.run((signal) => new Promise((_, reject) => {
    signal.addEventListener('abort', () => { aborted = true; reject(new Error('aborted')); });
  })).catch((e) => e);
  assert.ok(err instanceof CrossmeshError);
  assert.equal(err.code, 'CM_ERR_TIMEOUT');
  assert.match(err.message, /component s did not answer within 30 ms/);
  assert.ok(aborted);
});

test('circuit breaker: trips after consecutiveFailures > N, fails fast, half-opens after timeout, closes on success', async () => {
  let now = 1000;
  const c = compileResiliency([res('r', { policies: { circuitBreakers: { cb: { maxRequests: 1, timeout: '10s', trip: 'consecutiveFailures > 2' } } }, targets: { components: { s: { outbound: { circuitBreaker: 'cb' } } } } })], { now: () => now });
  const p = c.forComponent('s')!;
  let calls = 0;
  for (let i = 0; i < 3; i++) await assert.rejects(p.run(() => { calls++; return fail(); }), /down/);
  assert.equal(p.breaker!.currentState, 'open');
  const fast = await p.run(async () => { calls++; return 1; }).catch((e) => e);
  assert.equal(calls, 3, 'fn not called while open');
  assert.equal(fast.code, 'CM_ERR_UNAVAILABLE');
  assert.match(fast.message, /circuit breaker "cb" for component s is open/);
  now += 10_000;
  assert.equal(p.breaker!.currentState, 'half-open');
  assert.equal(await p.run(async () => 'ok'), 'ok');
  assert.equal(p.breaker!.currentState, 'closed');
  // A failure while half-open re-opens.
  for (let i = 0; i < 3; i++) await assert.rejects(p.run(fail));
  now += 10_000;
  await assert.rejects(p.run(fail), /down/);
  assert.equal(p.breaker!.currentState, 'open');
});

test('retries stop when the breaker opens', async () => {
  const c = compileResiliency([res('r', { policies: { retries: { r: { duration: '1ms', maxRetries: 10 } }, circuitBreakers: { cb: { trip: 'consecutiveFailures >= 2', timeout: '1m' } } }, targets: { apps: { a: { retry: 'r', circuitBreaker: 'cb' } } } })]);
  let calls = 0;
  const err = await c.forApp('a')!.run(() => { calls++; return fail(); }).catch((e) => e);
  assert.equal(calls, 2);
  assert.match(err.message, /circuit breaker "cb" for app a is open/);
});

test('scopes, first definition wins, problems reported, trip parser', () => {
  const objs = [
    res('b', { policies: { timeouts: { t: '9s' } }, targets: { apps: { x: { timeout: 't' } } } }),
    res('a', { policies: { timeouts: { t: '1s' } }, targets: { apps: { x: { timeout: 't' }, y: { retry: 'missing' } } } }),
    res('c', { policies: { timeouts: { t2: '3s' } }, targets: { apps: { z: { timeout: 't2' } } } }, ['someone-else']),
  ];
  const c = compileResiliency(objs, { appId: 'me' });
  assert.equal(c.forApp('x')!.timeoutMs, 1000);
  assert.equal(c.forApp('y'), undefined);
  assert.equal(c.forApp('z'), undefined);
  assert.ok(c.problems.some((p) => p.includes('retry policy "missing"')));
  const t = parseTrip('consecutiveFailures > 5 || totalFailures >= 3 && requests != 0');
  const counts = { requests: 1, totalSuccesses: 0, totalFailures: 3, consecutiveSuccesses: 0, consecutiveFailures: 0 };
  assert.equal(t(counts), true);
  assert.equal(t({ ...counts, totalFailures: 2 }), false);
  assert.throws(() => parseTrip('bogus > 1'));
  const b = new CircuitBreaker('cb', 'x', { maxRequests: 1, intervalMs: 0, timeoutMs: 1, trip: 'consecutiveFailures > 0' });
  b.enter(); b.failure();
  assert.equal(b.currentState === 'open' || b.currentState === 'half-open', true);
});
