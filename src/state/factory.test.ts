import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';
import { CrossmeshError } from '../errors.js';
import { createStateStore, SUPPORTED_STATE_STORES } from './factory.js';
import { MemoryStateStore } from './memory.js';
import { SqliteStateStore } from './sqlite.js';

const config = { name: 'statestore', metadata: {}, dataDir: '/tmp/x' };

it('createStateStore knows state.in-memory, state.sqlite, state.redis v1', async () => {
  assert.deepEqual([...SUPPORTED_STATE_STORES].sort(), ['state.in-memory', 'state.redis', 'state.sqlite']);
  assert.ok((await createStateStore('state.in-memory', config)) instanceof MemoryStateStore);
  assert.ok((await createStateStore('state.sqlite', config, 'v1')) instanceof SqliteStateStore);
});

it('an unknown type or version is CM_ERR_CONFIG listing what is supported', async () => {
  await assert.rejects(createStateStore('state.mongodb', config), (err: unknown) => err instanceof CrossmeshError && err.code === 'CM_ERR_CONFIG' && /statestore.*state\.mongodb.*state\.in-memory, state\.sqlite, state\.redis/.test(err.message));
  await assert.rejects(createStateStore('state.sqlite', config, 'v2'), (err: unknown) => err instanceof CrossmeshError && err.code === 'CM_ERR_CONFIG' && /v2/.test(err.message));
});

it('a backend module is loaded only when a store of its type is created (better-sqlite3, ioredis)', () => {
  // In a fresh process: this file itself imports sqlite.js. Both packages are CommonJS, so once
  // imported they sit in the require cache.
  const factory = new URL('./factory.js', import.meta.url).href;
  const script = `
    import { createRequire } from 'node:module';
    const { createStateStore } = await import(${JSON.stringify(factory)});
    const cache = () => Object.keys(createRequire(${JSON.stringify(factory)}).cache);
    const has = (pkg) => cache().some((f) => f.includes('/node_modules/' + pkg + '/'));
    const seen = [];
    await createStateStore('state.in-memory', { name: 'm', metadata: {}, dataDir: '/tmp' });
    seen.push(['memory', has('better-sqlite3'), has('ioredis')]);
    await createStateStore('state.sqlite', { name: 's', metadata: {}, dataDir: '/tmp' });
    seen.push(['sqlite', has('better-sqlite3'), has('ioredis')]);
    console.log(JSON.stringify(seen));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [['memory', false, false], ['sqlite', true, false]]);
});
