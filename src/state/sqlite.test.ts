import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { CrossmeshError } from '../errors.js';
import { stateContract } from '../../test/support/state-contract.js';
import { SQLITE_ETAG_RULES } from './etag.js';
import { runCounters } from '../../test/support/state-counter.js';
import { createStateStore } from './factory.js';
import { SqliteStateStore, sqliteFile } from './sqlite.js';
import type { StateStore, StoreConfig } from './types.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'crossmesh-state-'));
}

function config(dataDir: string, metadata: Record<string, string> = {}): StoreConfig {
  return { name: 'statestore', metadata, dataDir };
}

async function open(cfg: StoreConfig): Promise<SqliteStateStore> {
  const store = new SqliteStateStore(cfg);
  await store.init();
  return store;
}

stateContract(
  'sqlite (two connections on one file)',
  async () => {
    const dir = tempDir();
    const stores: StateStore[] = [await open(config(dir))];
    return {
      store: stores[0],
      // A second SqliteStateStore on the same file = a second sidecar process on the machine.
      peer: async () => {
        const s = await open(config(dir));
        stores.push(s);
        return s;
      },
      cleanup: async () => {
        for (const s of stores) await s.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  { query: true, etagFormat: UUID, etagRules: SQLITE_ETAG_RULES, foreignEtag: 'mismatch' },
);

/** Runs test/support/state-counter-worker.js in another process; resolves once it is ready, `go()` starts it. */
function worker(cfg: StoreConfig, key: string, clients: number, times: number) {
  const script = fileURLToPath(new URL('../../test/support/state-counter-worker.js', import.meta.url));
  const child = spawn(process.execPath, [script, 'state.sqlite', JSON.stringify(cfg), key, String(clients), String(times)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d.toString();
      if (out.startsWith('ready\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`worker exited early with ${code}`)));
  });
  const result = new Promise<{ successes: number; conflicts: number }>((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.split('\n')[1])) : reject(new Error(`worker exited with ${code}: ${out}`))));
  });
  return { ready, result, go: () => child.stdin.end('go\n') };
}

describe('SqliteStateStore specifics', () => {
  it('no lost update with two real processes and this one incrementing the same key', async () => {
    const dir = tempDir();
    try {
      const cfg = config(dir, { timeout: '30s' });
      const store = await open(cfg);
      const workers = [worker(cfg, 'shared', 10, 15), worker(cfg, 'shared', 10, 15)];
      await Promise.all(workers.map((w) => w.ready));
      workers.forEach((w) => w.go());
      const mine = await runCounters([store], 'shared', 10, 15);
      const theirs = await Promise.all(workers.map((w) => w.result));
      const total = [mine, ...theirs].reduce((a, r) => a + r.successes, 0);
      assert.equal(total, 450);
      assert.equal((await store.get('shared'))!.data.toString(), '450');
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('defaults to <dataDir>/state.db in WAL mode with the documented schema', async () => {
    const dir = tempDir();
    try {
      const dataDir = join(dir, 'nested', 'state');
      const store = await open(config(dataDir));
      await store.set({ key: 'k', data: Buffer.from('v'), ttlSeconds: 60, concurrency: 'last-write' });
      assert.equal(store.file, join(dataDir, 'state.db'));
      await store.close();
      const db = new Database(join(dataDir, 'state.db'), { readonly: true });
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      const row = db.prepare('SELECT key, value, etag, expires_at, update_time FROM state').get() as Record<string, unknown>;
      assert.equal(row.key, 'k');
      assert.ok(Buffer.isBuffer(row.value));
      assert.match(String(row.etag), UUID);
      assert.ok(typeof row.expires_at === 'number' && typeof row.update_time === 'number');
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('understands connectionString forms and tableName', async () => {
    assert.equal(sqliteFile(undefined, '/d'), '/d/state.db');
    assert.equal(sqliteFile('/abs/x.db', '/d'), '/abs/x.db');
    assert.equal(sqliteFile('rel.db', '/d'), '/d/rel.db');
    assert.equal(sqliteFile('file:data.db?_pragma=busy_timeout(5000)&_txlock=immediate', '/d'), '/d/data.db');
    assert.equal(sqliteFile('file:///abs/y.db', '/d'), '/abs/y.db');
    assert.equal(sqliteFile(':memory:', '/d'), ':memory:');
    assert.equal(sqliteFile('file::memory:?cache=shared', '/d'), ':memory:');
    assert.equal(sqliteFile('file:foo?mode=memory', '/d'), ':memory:');

    const dir = tempDir();
    try {
      const store = await open(config(dir, { connectionString: 'file:other.db?_pragma=x', tableName: 'my_state', timeout: '2s' }));
      await store.set({ key: 'k', data: Buffer.from('v'), concurrency: 'last-write' });
      await store.close();
      const db = new Database(join(dir, 'other.db'), { readonly: true });
      assert.equal(db.prepare('SELECT COUNT(*) FROM my_state').pluck().get(), 1);
      db.close();
      const mem = await open(config(dir, { connectionString: ':memory:' }));
      await mem.set({ key: 'k', data: Buffer.from('v'), concurrency: 'last-write' });
      assert.equal((await mem.get('k'))!.data.toString(), 'v');
      await mem.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad metadata with CM_ERR_CONFIG', async () => {
    for (const metadata of <Record<string, string>[]>[{ tableName: 'x; DROP TABLE y' }, { tableName: '1abc' }, { timeout: 'soon' }, { ttlInSeconds: 'x' }]) {
      await assert.rejects(createStateStore('state.sqlite', config('/tmp', metadata)), (err: unknown) => err instanceof CrossmeshError && err.code === 'CM_ERR_CONFIG' && /statestore/.test(err.message), JSON.stringify(metadata));
    }
  });

  it('purges expired rows (cleanupInterval) and reports a closed store as unavailable', async () => {
    const dir = tempDir();
    try {
      const store = await open(config(dir, { cleanupInterval: '200ms' }));
      await store.set({ key: 'gone', data: Buffer.from('v'), ttlSeconds: 1, concurrency: 'last-write' });
      await store.set({ key: 'kept', data: Buffer.from('v'), concurrency: 'last-write' });
      await new Promise((r) => setTimeout(r, 1_300));
      const db = new Database(join(dir, 'state.db'), { readonly: true });
      assert.deepEqual(db.prepare('SELECT key FROM state').pluck().all(), ['kept']);
      db.close();
      await store.close();
      await assert.rejects(store.get('kept'), (err: unknown) => err instanceof CrossmeshError && err.code === 'CM_ERR_STORE_UNAVAILABLE');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a file that cannot be opened fails init with CM_ERR_STORE_UNAVAILABLE naming it', async () => {
    const dir = tempDir();
    try {
      writeFileSync(join(dir, 'plain-file'), '');
      const store = new SqliteStateStore(config(dir, { connectionString: 'plain-file/x.db' }));
      await assert.rejects(store.init(), (err: unknown) => err instanceof CrossmeshError && err.code === 'CM_ERR_STORE_UNAVAILABLE' && /plain-file\/x\.db/.test(err.message));
      assert.ok(!existsSync(join(dir, 'state.db')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
