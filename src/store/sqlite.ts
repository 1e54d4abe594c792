/**
 * SQLite ResourceStore (better-sqlite3): the default store of `crossmesh cluster`.
 *
 * One process owns a store file. The revision counter is cached in memory and every write
 * trusts that no one else writes the file; two SqliteStore instances (or processes) on the same
 * file would hand out the same revisions. The cluster process opens its data dir once; other
 * tools must go through its API, not the file.
 */
import Database from 'better-sqlite3';
import type { KubeObject } from '../api/types.js';
import { BaseStore, type BaseStoreOptions, type Change } from './base.js';
import type { ObjectKey } from './keys.js';
import { migrate } from './sqlite-schema.js';
import type { StoredWatchEvent } from './types.js';
import type { EventFilter } from './watchers.js';

export interface SqliteStoreOptions extends BaseStoreOptions {
  file: string;
}

interface EventRow {
  revision: number;
  storage_key: string;
  type: StoredWatchEvent['type'];
  json: string;
}

export class SqliteStore extends BaseStore {
  protected readonly freshReads = true;
  private readonly db: Database.Database;
  private rev: number;
  private readonly stmt: {
    get: Database.Statement<[string, string, string], { json: string }>;
    listKind: Database.Statement<[string], { json: string }>;
    listNamespace: Database.Statement<[string, string], { json: string }>;
    upsert: Database.Statement<[string, string, string, number, string]>;
    remove: Database.Statement<[string, string, string]>;
    appendEvent: Database.Statement<[number, string, string, string, string]>;
    trimEvents: Database.Statement<[number]>;
    setRevision: Database.Statement<[number]>;
    getRevision: Database.Statement<[], { value: number }>;
    oldest: Database.Statement<[], { oldest: number | null }>;
    eventsSince: Database.Statement<{ after: number; sk: string | null; ns: string | null }, EventRow>;
  };
  private readonly writeTx: (change: Change) => void;

  constructor(opts: SqliteStoreOptions) {
    super(opts);
    this.db = new Database(opts.file);
    try {
      // WAL + NORMAL: a crash can lose the last transactions but never corrupts the file,
      // and writes do not fsync each time (a store write is on the API's request path).
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('busy_timeout = 5000');
      migrate(this.db, opts.file);
      const db = this.db;
      this.stmt = {
        get: db.prepare('SELECT json FROM objects WHERE storage_key = ? AND namespace = ? AND name = ?'),
        listKind: db.prepare('SELECT json FROM objects WHERE storage_key = ? ORDER BY namespace, name'),
        listNamespace: db.prepare('SELECT json FROM objects WHERE storage_key = ? AND namespace = ? ORDER BY name'),
        upsert: db.prepare(
          `INSERT INTO objects (storage_key, namespace, name, revision, json) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (storage_key, namespace, name) DO UPDATE SET revision = excluded.revision, json = excluded.json`,
        ),
        remove: db.prepare('DELETE FROM objects WHERE storage_key = ? AND namespace = ? AND name = ?'),
        appendEvent: db.prepare('INSERT INTO events (revision, storage_key, namespace, type, json) VALUES (?, ?, ?, ?, ?)'),
        trimEvents: db.prepare('DELETE FROM events WHERE revision <= ?'),
        setRevision: db.prepare(`UPDATE meta SET value = ? WHERE key = 'revision'`),
        getRevision: db.prepare(`SELECT value FROM meta WHERE key = 'revision'`),
        oldest: db.prepare('SELECT MIN(revision) AS oldest FROM events'),
        eventsSince: db.prepare(
          `SELECT revision, storage_key, type, json FROM events
           WHERE revision > @after AND (@sk IS NULL OR storage_key = @sk) AND (@ns IS NULL OR namespace = @ns)
           ORDER BY revision`,
        ),
      };
      this.rev = this.stmt.getRevision.get()!.value;
      this.writeTx = this.db.transaction((change: Change) => {
        const { key, object, revision } = change;
        const json = JSON.stringify(object);
        if (change.type === 'DELETED') this.stmt.remove.run(key.storageKey, key.namespace, key.name);
        else this.stmt.upsert.run(key.storageKey, key.namespace, key.name, revision, json);
        this.stmt.appendEvent.run(revision, key.storageKey, key.namespace, change.type, json);
        // Revisions are contiguous, so this keeps exactly the newest eventLogSize events.
        this.stmt.trimEvents.run(revision - this.eventLogSize);
        this.stmt.setRevision.run(revision);
      });
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  revision(): number {
    return this.rev;
  }

  protected readObject(key: ObjectKey): KubeObject | undefined {
    const row = this.stmt.get.get(key.storageKey, key.namespace, key.name);
    return row && (JSON.parse(row.json) as KubeObject);
  }

  protected listObjects(storageKey: string, namespace: string | undefined): KubeObject[] {
    const rows = namespace === undefined ? this.stmt.listKind.all(storageKey) : this.stmt.listNamespace.all(storageKey, namespace);
    return rows.map((r) => JSON.parse(r.json) as KubeObject);
  }

  protected applyChange(change: Change): void {
    this.writeTx(change);
    // Only once committed: a failed transaction leaves the counter where the file has it.
    this.rev = change.revision;
  }

  protected oldestRetained(): number | undefined {
    return this.stmt.oldest.get()?.oldest ?? undefined;
  }

  protected eventsSince(after: number, filter: EventFilter): StoredWatchEvent[] {
    const rows = this.stmt.eventsSince.all({ after, sk: filter.storageKey ?? null, ns: filter.namespace ?? null });
    return rows.map((r) => ({ type: r.type, object: JSON.parse(r.json) as KubeObject, revision: r.revision, storageKey: r.storage_key }));
  }

  protected closeBackend(): void {
    this.db.close();
  }
}
