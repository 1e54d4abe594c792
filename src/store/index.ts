import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
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
 */
export function openStore(dataDir: string | null): ResourceStore {
  if (dataDir === null) return new MemoryStore();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return new SqliteStore({ file: join(dataDir, 'resources.db') });
}
