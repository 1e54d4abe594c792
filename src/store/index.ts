import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CrossmeshError } from '../errors.js';
import { MemoryStore } from './memory.js';
import { SqliteStore } from './sqlite.js';
import type { ResourceStore } from './types.js';

export type * from './types.js';
export { MemoryStore } from './memory.js';
export { SqliteStore, type SqliteStoreOptions } from './sqlite.js';
export { BaseStore, DEFAULT_EVENT_LOG_SIZE, type BaseStoreOptions } from './base.js';

/**
 * The store of a cluster process: in memory when there is no data dir, else SQLite at
 * `${dataDir}/resources.db`. The dir is created owner-only (0700): it holds Secrets.
 * `CROSSMESH_STORE_EVENT_LOG_SIZE` (a positive integer, default 10000) sets how many events the
 * log keeps for watch resumption and older-revision lists (etcd's compaction window): a smaller
 * one makes clients relist sooner (tests use it to force 410 Gone).
 */
export function openStore(dataDir: string | null, env: NodeJS.ProcessEnv = process.env): ResourceStore {
  const raw = env.CROSSMESH_STORE_EVENT_LOG_SIZE;
  const eventLogSize = raw === undefined || raw === '' ? undefined : Number(raw);
  if (eventLogSize !== undefined && (!Number.isSafeInteger(eventLogSize) || eventLogSize < 1)) {
    throw new CrossmeshError('CM_ERR_CONFIG', `CROSSMESH_STORE_EVENT_LOG_SIZE must be a positive integer (how many events the store keeps), got "${raw}"; unset it for the default 10000`);
  }
  if (dataDir === null) return new MemoryStore({ eventLogSize });
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return new SqliteStore({ file: join(dataDir, 'resources.db'), eventLogSize });
}
