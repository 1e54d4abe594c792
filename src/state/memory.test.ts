import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stateContract } from '../../test/support/state-contract.js';
import { IN_MEMORY_ETAG_RULES } from './etag.js';
import { MemoryStateStore } from './memory.js';

const config = { name: 'statestore', metadata: {}, dataDir: '/nonexistent' };

stateContract(
  'memory',
  async () => {
    const store = new MemoryStateStore(config);
    await store.init();
    return { store, cleanup: () => store.close() };
  },
  { query: true, etagFormat: /^[0-9a-f-]{36}$/, etagRules: IN_MEMORY_ETAG_RULES, foreignEtag: 'mismatch' },
);

describe('MemoryStateStore specifics', () => {
  it('returns copies: mutating a returned or given buffer does not change the store', async () => {
    const store = new MemoryStateStore(config);
    await store.init();
    const data = Buffer.from('abc');
    await store.set({ key: 'k', data, concurrency: 'last-write' });
    data[0] = 0x7a;
    (await store.get('k'))!.data[1] = 0x7a;
    assert.equal((await store.get('k'))!.data.toString(), 'abc');
    await store.close();
  });

  it('applies the component default ttlInSeconds unless the request says -1', async () => {
    const store = new MemoryStateStore({ ...config, metadata: { ttlInSeconds: '60' } });
    await store.init();
    await store.set({ key: 'a', data: Buffer.from('1'), concurrency: 'last-write' });
    await store.set({ key: 'b', data: Buffer.from('1'), ttlSeconds: -1, concurrency: 'last-write' });
    const a = (await store.get('a'))!.expiresAt!;
    assert.ok(a > Date.now() + 55_000 && a <= Date.now() + 60_000);
    assert.equal((await store.get('b'))!.expiresAt, undefined);
    await store.close();
  });
});
