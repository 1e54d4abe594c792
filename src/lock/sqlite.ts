/**
 * lock.sqlite: crossmesh's own lock store (daprd has no embedded one: its only lock component is
 * lock.redis), on the same sqlite file state.sqlite uses by default (`<dataDir>/state.db`, table
 * `locks`), so every sidecar on the machine shares the locks. Metadata: `connectionString`,
 * `tableName` (default `locks`), `timeout` (busy timeout, default 20 s), as state.sqlite.
 *
 * Same semantics as lock.redis: tryLock = one conditional upsert (a row whose expiry passed is
 * taken over, like a Redis key that expired; a held lock is refused, also to its own owner, as
 * SET NX refuses); unlock = compare-and-delete in one IMMEDIATE transaction (missing or
 * expired → LOCK_DOES_NOT_EXIST, another owner → LOCK_BELONGS_TO_OTHERS). Expiry is wall-clock
 * ms on this machine, which every process sharing the file reads.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { CrossmeshError } from '../errors.js';
import { sqliteFile } from '../state/sqlite.js';
import { MetadataReader } from '../state/metadata.js';
import { UNLOCK_STATUS, type LockStore, type LockStoreConfig, type UnlockStatus } from './types.js';

export class SqliteLockStore implements LockStore {
  readonly file: string;
  private readonly table: string;
  private readonly timeoutMs: number;
  private db?: Database.Database;
  private tryStmt?: Database.Statement<{ key: string; owner: string; exp: number; now: number }>;
  private unlockTx?: (key: string, owner: string, now: number) => UnlockStatus;

  constructor(private readonly config: LockStoreConfig) {
    const md = new MetadataReader(config, 'lock store');
    this.file = sqliteFile(md.string('connectionString'), config.dataDir);
    this.table = md.string('tableName') ?? 'locks';
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(this.table)) {
      throw new CrossmeshError('CM_ERR_CONFIG', `lock store ${config.name}: metadata tableName=${JSON.stringify(this.table)} is not a valid identifier (letters, digits, _; not starting with a digit)`);
    }
    this.timeoutMs = Math.round(md.durationMs('timeout') ?? 20_000);
  }

  async init(): Promise<void> {
    try {
      if (this.file !== ':memory:') mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
      const db = new Database(this.file, { timeout: this.timeoutMs });
      this.db = db;
      db.pragma(`busy_timeout = ${this.timeoutMs}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      const t = `"${this.table}"`;
      db.exec(`CREATE TABLE IF NOT EXISTS ${t} (key TEXT NOT NULL PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL)`);
      this.tryStmt = db.prepare(`INSERT INTO ${t} (key, owner, expires_at) VALUES (@key, @owner, @exp)
        ON CONFLICT(key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at WHERE ${t}.expires_at <= @now`);
      const find = db.prepare<{ key: string; now: number }, { owner: string }>(`SELECT owner FROM ${t} WHERE key = @key AND expires_at > @now`);
      const del = db.prepare<{ key: string }>(`DELETE FROM ${t} WHERE key = @key`);
      const tx = db.transaction((key: string, owner: string, now: number): UnlockStatus => {
        const row = find.get({ key, now });
        if (!row) return UNLOCK_STATUS.LOCK_DOES_NOT_EXIST;
        if (row.owner !== owner) return UNLOCK_STATUS.LOCK_BELONGS_TO_OTHERS;
        del.run({ key });
        return UNLOCK_STATUS.SUCCESS;
      });
      this.unlockTx = (key, owner, now) => tx.immediate(key, owner, now);
    } catch (err) {
      this.db?.close();
      this.db = undefined;
      throw this.wrap(err, 'cannot open');
    }
  }

  private wrap(err: unknown, what: string): CrossmeshError {
    return new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', `lock store ${this.config.name}: ${what} ${this.file}: ${(err as Error).message}`, { cause: err });
  }

  private ready(): Database.Database {
    if (!this.db) throw new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', `lock store ${this.config.name} is closed`);
    return this.db;
  }

  async tryLock(key: string, owner: string, expiryInSeconds: number): Promise<boolean> {
    this.ready();
    const now = Date.now();
    try {
      return this.tryStmt!.run({ key, owner, exp: now + expiryInSeconds * 1000, now }).changes === 1;
    } catch (err) {
      throw this.wrap(err, 'cannot write');
    }
  }

  async unlock(key: string, owner: string): Promise<UnlockStatus> {
    this.ready();
    try {
      return this.unlockTx!(key, owner, Date.now());
    } catch (err) {
      throw this.wrap(err, 'cannot write');
    }
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = undefined;
    db?.close();
  }
}
