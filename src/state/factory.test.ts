import assert from 'node:assert/strict';
import { it } from 'node:test';
import { CrossmeshError } from '../errors.js';
import { createStateStore, SUPPORTED_STATE_STORES } from './factory.js';
import { MemoryStateStore } from './memory.js';
import { SqliteStateStore } from './sqlite.js';

const config = { name: 'statestore', metadata: {}, dataDir: '/tmp/x' };

it('createStateStore knows state.in-memory, state.sqlite, state.redis v1', () => {
  assert.deepEqual([...SUPPORTED_STATE_STORES].sort(), ['state.in-memory', 'state.redis', 'state.sqlite']);
  assert.ok(createStateStore('state.in-memory', config) instanceof MemoryStateStore);
  assert.ok(createStateStore('state.sqlite', config, 'v1') instanceof SqliteStateStore);
});

it('an unknown type or version is CM_ERR_CONFIG listing what is supported', () => {
  assert.throws(() => createStateStore('state.mongodb', config), (err: unknown) => err instanceof CrossmeshError && err.code === 'CM_ERR_CONFIG' && /statestore.*state\.mongodb.*state\.in-memory, state\.sqlite, state\.redis/.test(err.message));
  assert.throws(() => createStateStore('state.sqlite', config, 'v2'), (err: unknown) => err instanceof CrossmeshError && err.code === 'CM_ERR_CONFIG' && /v2/.test(err.message));
});
