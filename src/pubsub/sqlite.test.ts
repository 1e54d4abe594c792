/**
 * pubsub.sqlite: the contract on a real file, then what only a shared file shows: sidecar
 * processes (test/support/pubsub-sqlite-worker.ts) splitting a group's messages, a SIGKILLed
 * one's messages reclaimed by the other, messages kept while no subscriber runs.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pubsubContract, recorder, until } from '../../test/support/pubsub-contract.js';
import { SqlitePubSub } from './sqlite.js';

const WORKER = fileURLToPath(new URL('../../test/support/pubsub-sqlite-worker.js', import.meta.url));
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'cm-pubsub-sqlite-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const TIMINGS = { redeliverInterval: '200ms', processingTimeout: '1s', pollInterval: '50ms' };
const open = async (dataDir: string, metadata: Record<string, string> = {}) => {
  const ps = new SqlitePubSub({ name: 'pubsub', metadata: { ...TIMINGS, ...metadata }, dataDir });
  await ps.init();
  return ps;
};
const text = (topic: string, t: string) => ({ topic, data: Buffer.from(t), contentType: 'text/plain', metadata: {} });

pubsubContract('pubsub.sqlite', async () => {
  const dir = tmp();
  const made: SqlitePubSub[] = [];
  const pubsub = await open(dir);
  made.push(pubsub);
  return {
    pubsub,
    peer: async () => {
      const p = await open(dir);
      made.push(p);
      return p;
    },
    cleanup: async () => {
      await Promise.all(made.map((p) => p.close()));
    },
  };
}, { sharedGroups: true, ttl: true, processingTimeoutMs: 1000 });

interface Worker { proc: ChildProcess; lines: { text: string; id: string; attempt: number }[]; ready: Promise<void> }

function worker(file: string, topic: string, consumer: string, workMs = 0): Worker {
  const proc = spawn(process.execPath, [WORKER, file, topic, 'g', consumer, String(workMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Worker['lines'] = [];
  const ready = new Promise<void>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`worker ${consumer} exited (${code}) before it subscribed`)));
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      const v = JSON.parse(l);
      if (v.ready) resolve();
      else lines.push(v);
    });
  });
  return { proc, lines, ready };
}

test('pubsub.sqlite: two sidecar processes in one group split 1,000 messages: none twice, none missing', async () => {
  const dir = tmp();
  const file = join(dir, 'pubsub-pubsub.db');
  const pub = await open(dir);
  // The group exists before the workers run (as once a sidecar subscribed): nothing is missed.
  await (await pub.subscribe({ topic: 'orders', group: 'g', consumer: 'setup', handler: async () => 'retry' })).close();
  // Each consumer's capacity is bounded (4 in flight, 5 ms each: at most ~800 msgs/s), below
  // the publish rate, so a backlog forms and both must drain it: with unbounded consumers the
  // one that polls first can take nearly everything (seen in CI: 983/17), which is allowed.
  const [a, b] = [worker(file, 'orders', 'a', 5), worker(file, 'orders', 'b', 5)];
  try {
    await Promise.all([a.ready, b.ready]);
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) await pub.publish(text('orders', `m${i}`));
    const publishMs = performance.now() - t0;
    await until(() => a.lines.length + b.lines.length >= 1000, 30_000, '1,000 deliveries');
    const all = [...a.lines, ...b.lines].map((l) => l.text);
    assert.equal(new Set(all).size, 1000, 'none missing');
    assert.equal(all.length, 1000, 'none twice');
    assert.ok(a.lines.length >= 100 && b.lines.length >= 100, `both took a share (${a.lines.length}/${b.lines.length})`);
    console.log(`# pubsub.sqlite: 1,000 publishes in ${publishMs.toFixed(0)} ms (${(1000 / (publishMs / 1000)).toFixed(0)} msgs/s), split ${a.lines.length}/${b.lines.length}`);
  } finally {
    a.proc.kill('SIGKILL');
    b.proc.kill('SIGKILL');
    await pub.close();
  }
});

test('pubsub.sqlite: a SIGKILLed sidecar process holding messages: the other consumer gets them after processingTimeout', async () => {
  const dir = tmp();
  const file = join(dir, 'pubsub-pubsub.db');
  const pub = await open(dir);
  const holder = worker(file, 'work', 'holder');
  await holder.ready;
  for (let i = 0; i < 5; i++) await pub.publish(text('work', `hold${i}`));
  await until(() => holder.lines.length === 5, 10_000, 'the holder to take all five');
  holder.proc.kill('SIGKILL');
  await new Promise((r) => holder.proc.once('exit', r));
  const r = recorder();
  const t0 = Date.now();
  const s = await pub.subscribe({ topic: 'work', group: 'g', consumer: 'rescuer', handler: r.handler });
  await until(() => r.got.length === 5, 10_000, 'the five reclaimed messages');
  assert.deepEqual(r.texts().sort(), ['hold0', 'hold1', 'hold2', 'hold3', 'hold4']);
  assert.ok(r.got.every((m) => m.attempt === 2), 'second attempt of each');
  assert.ok(Date.now() - t0 < 5000, 'reclaimed within the timeout and a poll');
  await s.close();
  await pub.close();
});

test('pubsub.sqlite: messages published while no subscriber runs are kept and delivered when one starts; acknowledged ones are removed', async () => {
  const dir = tmp();
  let ps = await open(dir);
  await (await ps.subscribe({ topic: 'later', group: 'g', consumer: 'c1', handler: async () => 'success' })).close();
  await ps.close();
  const pub = await open(dir);
  for (let i = 0; i < 10; i++) await pub.publish(text('later', `m${i}`));
  await pub.close();
  ps = await open(dir);
  const r = recorder();
  const s = await ps.subscribe({ topic: 'later', group: 'g', consumer: 'c2', handler: r.handler });
  await until(() => r.got.length === 10, 5000, 'the kept messages');
  await s.close();
  await ps.close();
});

test('pubsub.sqlite: bad metadata is CM_ERR_CONFIG naming the field; an unwritable file is CM_ERR_STORE_UNAVAILABLE naming it', async () => {
  assert.throws(() => new SqlitePubSub({ name: 'p', metadata: { processingTimeout: 'x' }, dataDir: '/tmp' }), (e: any) => e.code === 'CM_ERR_CONFIG' && /pubsub p: metadata processingTimeout="x" is invalid/.test(e.message));
  assert.throws(() => new SqlitePubSub({ name: 'p', metadata: { connectionString: ':memory:' }, dataDir: '/tmp' }), /cannot be shared; give a file path/);
  const dir = tmp();
  const ro = join(dir, 'ro');
  mkdirSync(ro);
  chmodSync(ro, 0o500);
  const ps = new SqlitePubSub({ name: 'p', metadata: { connectionString: join(ro, 'sub', 'x.db') }, dataDir: dir });
  // root ignores directory permissions: then the open succeeds and there is nothing to check.
  if (process.getuid?.() !== 0) {
    await assert.rejects(ps.init(), (e: any) => e.code === 'CM_ERR_STORE_UNAVAILABLE' && e.message.includes(join(ro, 'sub', 'x.db')));
  } else {
    const blocker = join(dir, 'afile');
    rmSync(blocker, { force: true });
    (await import('node:fs')).writeFileSync(blocker, 'x');
    const bad = new SqlitePubSub({ name: 'p', metadata: { connectionString: join(blocker, 'x.db') }, dataDir: dir });
    await assert.rejects(bad.init(), (e: any) => e.code === 'CM_ERR_STORE_UNAVAILABLE' && e.message.includes(join(blocker, 'x.db')));
  }
});
