import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { CrossmeshError } from '../errors.js';
import { storeContract } from '../../test/support/store-contract.js';
import { MemoryStore, openStore, SqliteStore } from './index.js';
import { SCHEMA_VERSION } from './sqlite-schema.js';
import type { ResourceStore } from './types.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'crossmesh-store-'));
}

storeContract('sqlite', (opts) => {
  const dir = tempDir();
  const file = join(dir, 'resources.db');
  let current: ResourceStore = new SqliteStore({ ...opts, file });
  return {
    store: current,
    reopen: () => (current = new SqliteStore({ ...opts, file })),
    cleanup: () => {
      current.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}, { persistent: true });

describe('SqliteStore specifics', () => {
  it('uses WAL, records its schema version, and trims the event log on disk', () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'r.db');
      const store = new SqliteStore({ file, eventLogSize: 3 });
      for (let i = 0; i < 10; i++) store.create({ storageKey: 'core/services', namespace: 'n', name: `o${i}` }, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' } });
      store.close();
      const db = new Database(file, { readonly: true });
      try {
        assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
        assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
        assert.deepEqual(db.prepare('SELECT revision FROM events ORDER BY revision').pluck().all(), [8, 9, 10]);
        assert.equal(db.prepare('SELECT COUNT(*) FROM objects').pluck().get(), 10);
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a file written by a newer schema', () => {
    const dir = tempDir();
    try {
      const file = join(dir, 'r.db');
      const db = new Database(file);
      db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
      db.close();
      assert.throws(() => new SqliteStore({ file }), (err: unknown) => err instanceof CrossmeshError && err.code === 'CM_ERR_CONFIG' && /newer/.test(err.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('openStore', () => {
  it('gives a MemoryStore without a data dir', () => {
    const store = openStore(null);
    assert.ok(store instanceof MemoryStore);
    store.close();
  });

  it('creates the data dir (0700) and a SqliteStore at resources.db', () => {
    const dir = tempDir();
    try {
      const dataDir = join(dir, 'a', 'b');
      const store = openStore(dataDir);
      assert.ok(store instanceof SqliteStore);
      assert.equal(statSync(dataDir).mode & 0o777, 0o700);
      assert.ok(statSync(join(dataDir, 'resources.db')).isFile());
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
