import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { CrossmeshError, type ErrorCode } from '../errors.js';
import { stateContract } from '../../test/support/state-contract.js';
import { REDIS_ETAG_RULES } from './etag.js';
import { runCounters } from '../../test/support/state-counter.js';
import { createStateStore } from './factory.js';
import { parseRedisHost } from './redis.js';
import { RedisServer } from '../../test/support/redis-server.js';
import type { StateStore, StoreConfig } from './types.js';

// No redis-server → every test here fails with RedisServer's install hint (never skipped).
const serverP = RedisServer.start();
serverP.catch(() => {});
after(async () => (await serverP.catch(() => undefined))?.close());

function config(server: RedisServer, metadata: Record<string, string> = {}): StoreConfig {
  return { name: 'statestore', metadata: { redisHost: server.address, redisPassword: server.password, ...metadata }, dataDir: '/nonexistent' };
}

async function open(cfg: StoreConfig): Promise<StateStore> {
  const store = await createStateStore('state.redis', cfg);
  await store.init();
  return store;
}

function raw(server: RedisServer): Redis {
  return new Redis({ host: server.host, port: server.port, password: server.password, lazyConnect: true });
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CrossmeshError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}

stateContract(
  'redis',
  async () => {
    const server = await serverP;
    const stores: StateStore[] = [await open(config(server))];
    return {
      store: stores[0],
      peer: async () => {
        const s = await open(config(server));
        stores.push(s);
        return s;
      },
      cleanup: async () => {
        for (const s of stores) await s.close();
        const r = raw(server);
        await r.connect();
        await r.flushdb();
        r.disconnect();
      },
    };
  },
  { query: false, etagFormat: /^[1-9]\d*$/, etagRules: REDIS_ETAG_RULES, foreignEtag: 'invalid' },
);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

describe('RedisStateStore specifics', () => {
  it("uses Dapr's layout: HASH {data, version}, etag = version from 1, EXPIRE / PERSIST", async () => {
    const server = await serverP;
    const store = await open(config(server, { redisDB: '3' }));
    const r = new Redis({ host: server.host, port: server.port, password: server.password, db: 3 });
    try {
      await store.set({ key: 'app||k', data: Buffer.from('{"a":1}'), concurrency: 'first-write' });
      assert.deepEqual(await r.hgetall('app||k'), { data: '{"a":1}', version: '1' });
      assert.equal((await store.get('app||k'))!.etag, '1');
      await store.set({ key: 'app||k', data: Buffer.from('2'), etag: '1', concurrency: 'first-write', ttlSeconds: 100 });
      assert.equal(await r.hget('app||k', 'version'), '2');
      assert.ok((await r.ttl('app||k')) > 90);
      await store.set({ key: 'app||k', data: Buffer.from('3'), concurrency: 'last-write' });
      assert.equal(await r.ttl('app||k'), -1);
      assert.equal((await store.get('app||k'))!.etag, '3');
      // A second store (another sidecar) sees the same data and etags.
      const other = await open(config(server, { redisDB: '3' }));
      assert.equal((await other.get('app||k'))!.etag, '3');
      await other.close();
      await r.flushdb();
    } finally {
      r.disconnect();
      await store.close();
    }
  });

  it('applies ttlInSeconds metadata as the default TTL', async () => {
    const server = await serverP;
    const store = await open(config(server, { redisDB: '4', ttlInSeconds: '50' }));
    await store.set({ key: 'k', data: Buffer.from('1'), concurrency: 'last-write' });
    const exp = (await store.get('k'))!.expiresAt!;
    assert.ok(exp > Date.now() + 45_000 && exp <= Date.now() + 50_000);
    await store.delete({ key: 'k', concurrency: 'last-write' });
    await store.close();
  });

  it('no lost update with two more processes incrementing through their own connections', async () => {
    const server = await serverP;
    const cfg = config(server, { redisDB: '5' });
    const script = fileURLToPath(new URL('../../test/support/state-counter-worker.js', import.meta.url));
    const workers = [0, 1].map(() => {
      const child = spawn(process.execPath, [script, 'state.redis', JSON.stringify(cfg), 'n', '10', '10'], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      const ready = new Promise<void>((resolve) => child.stdout.on('data', (d) => (out += d.toString()).startsWith('ready\n') && resolve()));
      const done = new Promise<number>((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.split('\n')[1]).successes) : reject(new Error(`worker exited ${code}`)))));
      return { child, ready, done };
    });
    await Promise.all(workers.map((w) => w.ready));
    workers.forEach((w) => w.child.stdin.end('go\n'));
    const store = await open(cfg);
    const mine = await runCounters([store], 'n', 10, 10);
    const theirs = await Promise.all(workers.map((w) => w.done));
    assert.equal(mine.successes + theirs[0] + theirs[1], 300);
    assert.equal((await store.get('n'))!.data.toString(), '300');
    await store.delete({ key: 'n', concurrency: 'last-write' });
    await store.close();
  });

  it('init: a wrong password is an authentication error naming the host', async () => {
    const server = await serverP;
    const store = await createStateStore('state.redis', config(server, { redisPassword: 'wrong' }));
    await rejectsWith(store.init(), 'CM_ERR_CONFIG', new RegExp(`authentication to redis at ${server.address} failed.*redisPassword`));
    const noPass = await createStateStore('state.redis', { ...config(server), metadata: { redisHost: server.address } });
    await rejectsWith(noPass.init(), 'CM_ERR_CONFIG', /authentication/);
  });

  it('init: an unreachable host says so, within dialTimeout', async () => {
    const port = await freePort();
    const store = await createStateStore('state.redis', { name: 'statestore', metadata: { redisHost: `127.0.0.1:${port}`, dialTimeout: '1s' }, dataDir: '/x' });
    const t0 = Date.now();
    await rejectsWith(store.init(), 'CM_ERR_STORE_UNAVAILABLE', new RegExp(`cannot reach redis at 127\\.0\\.0\\.1:${port}.*ECONNREFUSED`));
    assert.ok(Date.now() - t0 < 3_000);
  });

  it('bad metadata is CM_ERR_CONFIG; query is not supported', async () => {
    for (const metadata of <Record<string, string>[]>[{ redisHost: 'a:b:c' }, { redisHost: 'h:99999' }, { enableTLS: 'maybe' }, { redisDB: '-1' }, { dialTimeout: 'x' }, { maxRetries: 'many' }]) {
      await assert.rejects(createStateStore('state.redis', { name: 's', metadata, dataDir: '/x' }), (err: unknown) => err instanceof CrossmeshError && err.code === 'CM_ERR_CONFIG', JSON.stringify(metadata));
    }
    assert.deepEqual(parseRedisHost('[::1]:7000'), { host: '::1', port: 7000 });
    assert.deepEqual(parseRedisHost(undefined), { host: 'localhost', port: 6379 });
    const store = await createStateStore('state.redis', { name: 's', metadata: {}, dataDir: '/x' });
    assert.equal(store.features.query, false);
    assert.equal(store.query, undefined);
    void store.close();
  });

  it('Redis killed mid-run: commands fail with CM_ERR_STORE_UNAVAILABLE naming the host; after a restart it works again', async () => {
    const server = await RedisServer.start({ appendOnly: true });
    const store = await open(config(server, { maxRetries: '1' }));
    try {
      await store.set({ key: 'k', data: Buffer.from('before'), concurrency: 'last-write' });
      await server.stop(true);
      const host = new RegExp(`redis at ${server.address}`);
      await rejectsWith(store.set({ key: 'k', data: Buffer.from('lost'), concurrency: 'last-write' }), 'CM_ERR_STORE_UNAVAILABLE', host);
      await rejectsWith(store.get('k'), 'CM_ERR_STORE_UNAVAILABLE', host);
      await rejectsWith(store.transact([{ operation: 'delete', key: 'k', concurrency: 'last-write' }]), 'CM_ERR_STORE_UNAVAILABLE', host);
      await server.restart();
      const deadline = Date.now() + 5_000;
      for (;;) {
        try {
          await store.set({ key: 'k', data: Buffer.from('after'), concurrency: 'last-write' });
          break;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      assert.equal((await store.get('k'))!.data.toString(), 'after');
    } finally {
      await store.close();
      await server.close();
    }
  });
});
