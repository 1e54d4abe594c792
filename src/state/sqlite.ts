/**
 * state.sqlite (better-sqlite3). One file shared by every process on the machine that opens it:
 * sidecars of the same app id in different clusters share their keys through it (Dapr's
 * default keyPrefix). Hence:
 * - WAL + busy_timeout: a process waits for another's write instead of failing.
 * - Every etag-checked write is ONE statement whose WHERE clause states the concurrency rule,
 *   so the check and the write are atomic across processes (no read-then-write race).
 * - Transactions run in one BEGIN IMMEDIATE transaction (the write lock is taken up front, so
 *   no other process can commit between the checks and the writes).
 * ETag: a random UUID per write (as Dapr's sqlite store). Unlike a per-key counter it never
 * repeats after a delete + re-create, so a stale etag can't match a new value; and a string
 * that is not a UUID is reported as CM_ERR_ETAG_INVALID.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { CrossmeshError } from '../errors.js';
import { hasEtag } from './etag.js';
import { configError, etagMismatch } from './errors.js';
import { MetadataReader } from './metadata.js';
import { runQuery } from './query.js';
import { effectiveTtl, expiresAtMs } from './ttl.js';
import type { DeleteRequest, QueryRequest, QueryResult, SetRequest, StateStore, StoreConfig, StoredValue, TransactionOperation } from './types.js';

const DEFAULT_TIMEOUT_MS = 20_000; // Dapr's sqlite default
const DEFAULT_CLEANUP_MS = 3_600_000; // Dapr's cleanupInterval default (1h); reads ignore expired rows anyway

/**
 * `connectionString` → a file for better-sqlite3. Accepts a path, Dapr's `file:path?params`
 * URI form (params are ignored: this store sets its own pragmas) and `:memory:`. A relative path
 * is resolved against the data dir, not the cwd, so every sidecar opens the same file.
 */
export function sqliteFile(connectionString: string | undefined, dataDir: string): string {
  if (connectionString === undefined) return join(dataDir, 'state.db');
  let s = connectionString.trim();
  if (s.startsWith('file:')) {
    const q = s.indexOf('?');
    const params = new URLSearchParams(q >= 0 ? s.slice(q + 1) : '');
    s = (q >= 0 ? s.slice(0, q) : s).slice('file:'.length);
    if (s.startsWith('//')) s = s.slice(2); // file:///abs/path
    if (params.get('mode') === 'memory') return ':memory:';
  }
  if (s === ':memory:' || s === '') return ':memory:';
  return isAbsolute(s) ? s : resolve(dataDir, s);
}

interface Row {
  value: Buffer;
  etag: string;
  expires_at: number | null;
}

interface WriteParams {
  key: string;
  value: Buffer;
  etag: string;
  old: string | null;
  exp: number | null;
  now: number;
}

export class SqliteStateStore implements StateStore {
  readonly features = { etag: true, transactional: true, ttl: true, query: true };
  readonly file: string;
  private readonly table: string;
  private readonly timeoutMs: number;
  private readonly cleanupMs: number;
  private readonly defaultTtl: number | undefined;
  private db?: Database.Database;
  private stmt!: ReturnType<SqliteStateStore['prepare']>;
  private cleaner?: NodeJS.Timeout;

  constructor(private readonly config: StoreConfig) {
    const md = new MetadataReader(config);
    this.file = sqliteFile(md.string('connectionString'), config.dataDir);
    this.table = md.string('tableName') ?? 'state';
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(this.table)) {
      throw configError(config.name, `metadata tableName=${JSON.stringify(this.table)} is not a valid identifier (letters, digits, _; not starting with a digit)`);
    }
    this.timeoutMs = Math.round(md.durationMs('timeout') ?? DEFAULT_TIMEOUT_MS);
    this.cleanupMs = md.durationMs('cleanupInterval') ?? DEFAULT_CLEANUP_MS;
    this.defaultTtl = md.defaultTtlSeconds();
  }

  async init(): Promise<void> {
    try {
      if (this.file !== ':memory:') mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
      const db = new Database(this.file, { timeout: this.timeoutMs });
      this.db = db;
      db.pragma(`busy_timeout = ${this.timeoutMs}`);
      db.pragma('journal_mode = WAL');
      // NORMAL in WAL: a power loss may drop the last commits but never corrupts the file.
      db.pragma('synchronous = NORMAL');
      const t = `"${this.table}"`;
      db.exec(`CREATE TABLE IF NOT EXISTS ${t} (
        key TEXT NOT NULL PRIMARY KEY,
        value BLOB NOT NULL,
        etag TEXT NOT NULL,
        expires_at INTEGER,
        update_time INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS "${this.table}_expires_at" ON ${t} (expires_at) WHERE expires_at IS NOT NULL;`);
      this.stmt = this.prepare(db, t);
    } catch (err) {
      this.db?.close();
      this.db = undefined;
      throw this.wrap(err, 'cannot open');
    }
    if (this.cleanupMs > 0) {
      this.cleaner = setInterval(() => this.purgeExpired(), this.cleanupMs);
      this.cleaner.unref();
    }
  }

  private prepare(db: Database.Database, t: string) {
    const live = '(expires_at IS NULL OR expires_at > @now)';
    const cols = '(key, value, etag, expires_at, update_time) VALUES (@key, @value, @etag, @exp, @now)';
    const setAll = 'SET value = excluded.value, etag = excluded.etag, expires_at = excluded.expires_at, update_time = excluded.update_time';
    return {
      get: db.prepare<{ key: string; now: number }, Row>(`SELECT value, etag, expires_at FROM ${t} WHERE key = @key AND ${live}`),
      // first-write without etag: insert, or replace only a row that has expired.
      insertIfAbsent: db.prepare<WriteParams>(`INSERT INTO ${t} ${cols} ON CONFLICT(key) DO UPDATE ${setAll} WHERE ${t}.expires_at IS NOT NULL AND ${t}.expires_at <= @now`),
      updateIfEtag: db.prepare<WriteParams>(`UPDATE ${t} SET value = @value, etag = @etag, expires_at = @exp, update_time = @now WHERE key = @key AND etag = @old AND ${live}`),
      upsert: db.prepare<WriteParams>(`INSERT INTO ${t} ${cols} ON CONFLICT(key) DO UPDATE ${setAll}`),
      deleteIfEtag: db.prepare<{ key: string; old: string; now: number }>(`DELETE FROM ${t} WHERE key = @key AND etag = @old AND ${live}`),
      delete: db.prepare<{ key: string }>(`DELETE FROM ${t} WHERE key = @key`),
      purge: db.prepare<{ now: number }>(`DELETE FROM ${t} WHERE expires_at IS NOT NULL AND expires_at <= @now`),
      byPrefix: db.prepare<{ prefix: string; now: number }, { key: string; data: Buffer; etag: string }>(
        `SELECT key, value AS data, etag FROM ${t} WHERE substr(key, 1, length(@prefix)) = @prefix AND ${live}`,
      ),
    };
  }

  async get(key: string): Promise<StoredValue | undefined> {
    return this.run('get', () => this.read(key, Date.now()));
  }

  async bulkGet(keys: string[]): Promise<(StoredValue | undefined)[]> {
    // One read transaction: every value comes from the same snapshot.
    return this.run('bulk get', () => this.open().transaction(() => {
      const now = Date.now();
      return keys.map((k) => this.read(k, now));
    })());
  }

  async set(req: SetRequest): Promise<void> {
    this.run('save', () => this.apply({ operation: 'upsert', ...req }, Date.now()));
  }

  async delete(req: DeleteRequest): Promise<void> {
    this.run('delete', () => this.apply({ operation: 'delete', ...req }, Date.now()));
  }

  async transact(ops: TransactionOperation[]): Promise<void> {
    // Each op's statement checks its own etag; a mismatch throws and rolls everything back.
    this.run('transaction', () => this.open().transaction(() => {
      const now = Date.now();
      for (const op of ops) this.apply(op, now);
    }).immediate());
  }

  async query(q: QueryRequest, keyPrefix: string): Promise<QueryResult> {
    const rows = this.run('query', () => this.open() && this.stmt.byPrefix.all({ prefix: keyPrefix, now: Date.now() }));
    return runQuery(q, rows);
  }

  /** Deletes expired rows now (also run every cleanupInterval). */
  purgeExpired(): number {
    if (!this.db) return 0;
    try {
      return this.stmt.purge.run({ now: Date.now() }).changes;
    } catch {
      return 0; // busy: the next round will do it, reads skip expired rows anyway
    }
  }

  async close(): Promise<void> {
    if (this.cleaner) clearInterval(this.cleaner);
    this.db?.close();
    this.db = undefined;
  }

  private read(key: string, now: number): StoredValue | undefined {
    const row = this.stmt.get.get({ key, now });
    if (!row) return undefined;
    return { data: row.value, etag: row.etag, ...(row.expires_at !== null ? { expiresAt: row.expires_at } : {}) };
  }

  /**
   * One statement per op; `changes === 0` on a conditional statement = the etag rule refused it
   * (etag.ts, SQLITE_ETAG_RULES: a given etag must match a stored row, whatever the concurrency;
   * first-write without one only inserts).
   */
  private apply(op: TransactionOperation, now: number): void {
    this.open();
    if (op.operation === 'delete') {
      if (hasEtag(op.etag)) {
        if (this.stmt.deleteIfEtag.run({ key: op.key, old: op.etag, now }).changes === 0) throw etagMismatch(op.key);
      } else {
        this.stmt.delete.run({ key: op.key });
      }
      return;
    }
    const exp = expiresAtMs(effectiveTtl(op.ttlSeconds, this.defaultTtl), now) ?? null;
    const p: WriteParams = { key: op.key, value: op.data, etag: randomUUID(), old: null, exp, now };
    if (hasEtag(op.etag)) {
      if (this.stmt.updateIfEtag.run({ ...p, old: op.etag }).changes === 0) throw etagMismatch(op.key);
    } else if (op.concurrency === 'first-write') {
      if (this.stmt.insertIfAbsent.run(p).changes === 0) throw etagMismatch(op.key, 'first-write: key already exists (no etag given)');
    } else {
      this.stmt.upsert.run(p);
    }
  }

  private open(): Database.Database {
    if (!this.db) throw new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', `state store ${this.config.name}: sqlite ${this.file} is not open (init() not called or closed)`);
    return this.db;
  }

  /** Runs a synchronous db call; any non-Crossmesh error (busy past the timeout, I/O) = unavailable. */
  private run<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw this.wrap(err, `${what} failed`);
    }
  }

  private wrap(err: unknown, what: string): CrossmeshError {
    if (err instanceof CrossmeshError) return err;
    const msg = err instanceof Error ? err.message : String(err);
    return new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', `state store ${this.config.name}: sqlite ${this.file}: ${what}: ${msg}`, { cause: err });
  }
}
