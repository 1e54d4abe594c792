/**
 * Schema of the SQLite resource store, versioned with `PRAGMA user_version` so a later release
 * can migrate an existing data dir instead of asking users to delete it. To change the schema,
 * append a migration; never edit one that has shipped.
 */
import type Database from 'better-sqlite3';
import { CrossmeshError } from '../errors.js';

const MIGRATIONS: readonly string[] = [
  // 1: objects, the event log that feeds watch replay, and the revision counter.
  `
  CREATE TABLE objects (
    storage_key TEXT NOT NULL,
    namespace   TEXT NOT NULL,          -- '' for cluster-scoped kinds
    name        TEXT NOT NULL,
    revision    INTEGER NOT NULL,       -- revision of the last write (= metadata.resourceVersion)
    json        TEXT NOT NULL,
    PRIMARY KEY (storage_key, namespace, name)
  ) WITHOUT ROWID;
  CREATE TABLE events (
    revision    INTEGER PRIMARY KEY,    -- one event per revision, contiguous
    storage_key TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    type        TEXT NOT NULL,          -- ADDED | MODIFIED | DELETED
    json        TEXT NOT NULL
  );
  -- The counter lives apart from the log so it survives any amount of log trimming.
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO meta (key, value) VALUES ('revision', 0);
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the database to SCHEMA_VERSION, each migration in its own transaction. */
export function migrate(db: Database.Database, file: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new CrossmeshError(
      'CM_ERR_CONFIG',
      `${file} has store schema version ${current}, newer than this crossmesh understands (${SCHEMA_VERSION}); upgrade crossmesh or use another data dir`,
    );
  }
  for (let v = current; v < SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
