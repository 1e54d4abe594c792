/**
 * The one StateStore contract suite. Every backend runs it (src/state/memory.test.ts, sqlite.test.ts,
 * redis.test.ts), so "passes the contract" means "behaves like every other backend" for the
 * Dapr layer on top.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CrossmeshError, type ErrorCode } from '../../src/errors.js';
import { runCounters } from './state-counter.js';
import type { QueryRequest, StateStore } from '../../src/state/types.js';
import type { EtagRules } from '../../src/state/etag.js';

export interface StateFixture {
  store: StateStore;
  /** Another initialised store on the same data (a second sidecar); default: `store` itself. Closed by cleanup. */
  peer?: () => Promise<StateStore>;
  /** Closes every store it made and removes files / flushes data. */
  cleanup: () => Promise<void>;
}

export interface StateContractOptions {
  query: boolean;
  /** What this store's etags look like. */
  etagFormat: RegExp;
  /** daprd's component's etag rules for this store (src/state/etag.ts has the table and the sources). */
  etagRules: EtagRules;
  /** An etag the store could never have issued: CM_ERR_ETAG_INVALID (redis: versions are numbers) or a plain mismatch. */
  foreignEtag: 'invalid' | 'mismatch';
  /** Counter test size (default 50 clients × 4 increments). */
  counter?: { clients: number; times: number };
}

const b = (s: string) => Buffer.from(s);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CrossmeshError, `expected a CrossmeshError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

export function stateContract(name: string, make: () => Promise<StateFixture>, opts: StateContractOptions): void {
  describe(`StateStore contract: ${name}`, () => {
    let fx: StateFixture;
    let store: StateStore;
    beforeEach(async () => {
      fx = await make();
      store = fx.store;
    });
    afterEach(async () => fx.cleanup());

    const text = async (key: string) => (await store.get(key))?.data.toString();

    it('declares its features', () => {
      assert.deepEqual(store.features, { etag: true, transactional: true, ttl: true, query: opts.query });
      assert.equal(typeof store.query === 'function', opts.query);
    });

    it('get of a missing key is undefined; set then get returns data and an etag', async () => {
      assert.equal(await store.get('app||nope'), undefined);
      await store.set({ key: 'app||a', data: b('{"n":1}'), concurrency: 'last-write' });
      const got = await store.get('app||a');
      assert.equal(got?.data.toString(), '{"n":1}');
      assert.match(got!.etag, opts.etagFormat);
      assert.equal(got!.expiresAt, undefined);
    });

    it('the etag changes on every write', async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 5; i++) {
        await store.set({ key: 'k', data: b(String(i)), concurrency: 'last-write' });
        seen.add((await store.get('k'))!.etag);
      }
      assert.equal(seen.size, 5);
    });

    it('first-write: no etag = create only; the current etag wins; a stale etag is refused', async () => {
      await store.set({ key: 'k', data: b('1'), concurrency: 'first-write' });
      const e1 = (await store.get('k'))!.etag;
      await rejectsWith(store.set({ key: 'k', data: b('x'), concurrency: 'first-write' }), 'CM_ERR_ETAG_MISMATCH', /k/);
      await rejectsWith(store.set({ key: 'k', data: b('x'), etag: '', concurrency: 'first-write' }), 'CM_ERR_ETAG_MISMATCH');
      await store.set({ key: 'k', data: b('2'), etag: e1, concurrency: 'first-write' });
      await rejectsWith(store.set({ key: 'k', data: b('x'), etag: e1, concurrency: 'first-write' }), 'CM_ERR_ETAG_MISMATCH');
      assert.equal(await text('k'), '2');
    });

    it(`an etag on a key that does not exist: ${opts.etagRules.missingKeyWithEtag === 'ignore' ? 'written and deleted (daprd\'s state.redis)' : 'refused as a mismatch'}`, async () => {
      // The Dapr JS SDK's e2e case: [{"key":"key-1","value":"value-1","etag":"1234","options":{"concurrency":"first-write"}}].
      const etag = '1234';
      if (opts.etagRules.missingKeyWithEtag === 'ignore') {
        await store.set({ key: 'key-1', data: b('"value-1"'), etag, concurrency: 'first-write' });
        assert.equal(await text('key-1'), '"value-1"');
        await store.delete({ key: 'gone', etag, concurrency: 'first-write' });
        await store.transact([{ operation: 'upsert', key: 'key-2', data: b('2'), etag, concurrency: 'first-write' }]);
        assert.equal(await text('key-2'), '2');
      } else {
        await rejectsWith(store.set({ key: 'key-1', data: b('"value-1"'), etag, concurrency: 'first-write' }), 'CM_ERR_ETAG_MISMATCH', /key-1/);
        await rejectsWith(store.set({ key: 'key-1', data: b('"value-1"'), etag, concurrency: 'last-write' }), 'CM_ERR_ETAG_MISMATCH');
        await rejectsWith(store.delete({ key: 'gone', etag, concurrency: 'first-write' }), 'CM_ERR_ETAG_MISMATCH', /gone/);
        await rejectsWith(store.transact([{ operation: 'upsert', key: 'key-2', data: b('2'), etag, concurrency: 'first-write' }]), 'CM_ERR_ETAG_MISMATCH');
        assert.equal(await store.get('key-1'), undefined);
        assert.equal(await store.get('key-2'), undefined);
      }
    });

    it('a given etag is checked under last-write too; without one last-write always writes', async () => {
      await store.set({ key: 'k', data: b('1'), concurrency: 'last-write' });
      const e1 = (await store.get('k'))!.etag;
      await store.set({ key: 'k', data: b('2'), concurrency: 'last-write' });
      await rejectsWith(store.set({ key: 'k', data: b('3'), etag: e1, concurrency: 'last-write' }), 'CM_ERR_ETAG_MISMATCH', /k/);
      await rejectsWith(store.delete({ key: 'k', etag: e1, concurrency: 'last-write' }), 'CM_ERR_ETAG_MISMATCH');
      assert.equal(await text('k'), '2');
      await store.set({ key: 'k', data: b('4'), etag: (await store.get('k'))!.etag, concurrency: 'last-write' });
      assert.equal(await text('k'), '4');
      await store.delete({ key: 'k', concurrency: 'last-write' });
      assert.equal(await store.get('k'), undefined);
    });

    it(`an etag this store could never have issued is ${opts.foreignEtag === 'invalid' ? 'CM_ERR_ETAG_INVALID' : 'a mismatch'}`, async () => {
      await store.set({ key: 'k', data: b('1'), concurrency: 'last-write' });
      const code = opts.foreignEtag === 'invalid' ? 'CM_ERR_ETAG_INVALID' : 'CM_ERR_ETAG_MISMATCH';
      await rejectsWith(store.set({ key: 'k', data: b('x'), etag: 'not-an-etag', concurrency: 'first-write' }), code, opts.foreignEtag === 'invalid' ? /not-an-etag/ : /k/);
      await rejectsWith(store.delete({ key: 'k', etag: 'not-an-etag', concurrency: 'first-write' }), code);
      assert.equal(await text('k'), '1');
    });

    it(`delete: the current etag deletes, a stale one is refused; first-write without an etag ${opts.etagRules.firstWriteDeleteNeedsEtag ? 'is refused for an existing key (daprd\'s state.in-memory)' : 'deletes'}`, async () => {
      await store.delete({ key: 'missing', concurrency: 'first-write' });
      await store.set({ key: 'k', data: b('1'), concurrency: 'last-write' });
      const e1 = (await store.get('k'))!.etag;
      await store.set({ key: 'k', data: b('2'), concurrency: 'last-write' });
      await rejectsWith(store.delete({ key: 'k', etag: e1, concurrency: 'first-write' }), 'CM_ERR_ETAG_MISMATCH', /k/);
      assert.equal(await text('k'), '2');
      await store.delete({ key: 'k', etag: (await store.get('k'))!.etag, concurrency: 'first-write' });
      assert.equal(await store.get('k'), undefined);
      await store.set({ key: 'k', data: b('3'), concurrency: 'last-write' });
      if (opts.etagRules.firstWriteDeleteNeedsEtag) {
        await rejectsWith(store.delete({ key: 'k', concurrency: 'first-write' }), 'CM_ERR_ETAG_MISMATCH', /already exists/);
        assert.equal(await text('k'), '3');
        await store.delete({ key: 'k', concurrency: 'last-write' });
      } else {
        await store.delete({ key: 'k', concurrency: 'first-write' });
      }
      assert.equal(await store.get('k'), undefined);
    });

    it('bulkGet keeps the order of the keys and gives undefined for missing ones', async () => {
      await store.set({ key: 'a', data: b('A'), concurrency: 'last-write' });
      await store.set({ key: 'c', data: b('C'), concurrency: 'last-write' });
      const got = await store.bulkGet(['c', 'b', 'a', 'c']);
      assert.deepEqual(got.map((v) => v?.data.toString()), ['C', undefined, 'A', 'C']);
      assert.equal(got[0]!.etag, (await store.get('c'))!.etag);
      assert.deepEqual(await store.bulkGet([]), []);
    });

    it('stores binary data byte for byte', async () => {
      const data = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7) % 256));
      await store.set({ key: 'bin', data, concurrency: 'last-write' });
      assert.ok((await store.get('bin'))!.data.equals(data));
      await store.set({ key: 'empty', data: Buffer.alloc(0), concurrency: 'last-write' });
      assert.equal((await store.get('empty'))?.data.length, 0);
      assert.deepEqual((await store.bulkGet(['bin']))[0]!.data, data);
    });

    it('TTL: expired values are invisible; -1 and a later write without TTL mean no expiry', async () => {
      const t0 = Date.now();
      await store.set({ key: 'short', data: b('1'), ttlSeconds: 1, concurrency: 'last-write' });
      await store.set({ key: 'persisted', data: b('1'), ttlSeconds: 1, concurrency: 'last-write' });
      await store.set({ key: 'persisted', data: b('2'), concurrency: 'last-write' });
      await store.set({ key: 'forever', data: b('1'), ttlSeconds: -1, concurrency: 'last-write' });
      const exp = (await store.get('short'))!.expiresAt!;
      assert.ok(exp > t0 + 500 && exp <= Date.now() + 1000, `expiresAt ${exp - t0} ms after the write`);
      assert.equal((await store.get('persisted'))!.expiresAt, undefined);
      await rejectsWith(store.set({ key: 'bad', data: b('1'), ttlSeconds: -5, concurrency: 'last-write' }), 'CM_ERR_BAD_REQUEST');
      await sleep(1_200);
      assert.equal(await store.get('short'), undefined);
      assert.deepEqual((await store.bulkGet(['short', 'persisted', 'forever'])).map((v) => v?.data.toString()), [undefined, '2', '1']);
      // An expired key counts as missing for first-write.
      await store.set({ key: 'short', data: b('new'), concurrency: 'first-write' });
      assert.equal(await text('short'), 'new');
    });

    it('transactions are all or nothing; later ops see earlier ones', async () => {
      await store.set({ key: 't1', data: b('0'), concurrency: 'last-write' });
      const stale1 = (await store.get('t1'))!.etag;
      await store.set({ key: 't1', data: b('1'), concurrency: 'last-write' });
      await store.set({ key: 't3', data: b('3'), concurrency: 'last-write' });
      const e1 = (await store.get('t1'))!.etag;
      const e3 = (await store.get('t3'))!.etag;
      await rejectsWith(
        store.transact([
          { operation: 'upsert', key: 't2', data: b('2'), concurrency: 'first-write' },
          { operation: 'delete', key: 't3', etag: e3, concurrency: 'first-write' },
          { operation: 'upsert', key: 't1', data: b('x'), etag: stale1, concurrency: 'first-write' },
        ]),
        'CM_ERR_ETAG_MISMATCH',
        /t1/,
      );
      assert.deepEqual((await store.bulkGet(['t1', 't2', 't3'])).map((v) => v?.data.toString()), ['1', undefined, '3']);
      assert.equal((await store.get('t1'))!.etag, e1);

      await store.transact([
        { operation: 'upsert', key: 't1', data: b('11'), etag: e1, concurrency: 'first-write' },
        { operation: 'upsert', key: 't2', data: b('22'), concurrency: 'first-write' },
        { operation: 'delete', key: 't3', etag: e3, concurrency: 'first-write' },
        { operation: 'upsert', key: 't4', data: b('once'), concurrency: 'first-write' },
      ]);
      assert.deepEqual((await store.bulkGet(['t1', 't2', 't3', 't4'])).map((v) => v?.data.toString()), ['11', '22', undefined, 'once']);
      await rejectsWith(
        store.transact([
          { operation: 'delete', key: 't4', concurrency: 'last-write' },
          { operation: 'upsert', key: 't5', data: b('5'), concurrency: 'first-write' },
          { operation: 'upsert', key: 't5', data: b('again'), concurrency: 'first-write' },
        ]),
        'CM_ERR_ETAG_MISMATCH',
      );
      assert.equal(await text('t4'), 'once');
      assert.equal(await store.get('t5'), undefined);
      await store.transact([
        { operation: 'delete', key: 't4', concurrency: 'last-write' },
        { operation: 'upsert', key: 't4', data: b('re'), concurrency: 'first-write', ttlSeconds: 60 },
      ]);
      const t4 = (await store.get('t4'))!;
      assert.equal(t4.data.toString(), 're');
      assert.ok(t4.expiresAt !== undefined);
      await store.transact([]);
    });

    it('counter: concurrent get → first-write set loops never lose an update', async () => {
      const { clients, times } = opts.counter ?? { clients: 50, times: 4 };
      const stores = fx.peer ? [store, await fx.peer()] : [store];
      const r = await runCounters(stores, 'counter', clients, times);
      assert.equal(r.successes, clients * times);
      assert.equal(await text('counter'), String(clients * times));
      assert.ok(r.conflicts > 0, 'the clients did contend');
    });

    if (opts.query) {
      describe('query', () => {
        const people = [
          { id: 1, name: 'ann', org: 'dev', age: 30, loc: { city: 'Oslo' } },
          { id: 2, name: 'bob', org: 'ops', age: 25, loc: { city: 'Rome' } },
          { id: 3, name: 'cid', org: 'dev', age: 41, loc: { city: 'Rome' } },
          { id: 4, name: 'dan', org: 'qa', age: 25 },
          { id: 5, name: 'eve', org: 'dev', age: 35, loc: { city: 'Oslo' } },
        ];
        beforeEach(async () => {
          for (const p of people) {
            await store.set({ key: `app||p${p.id}`, data: b(JSON.stringify(p)), concurrency: 'last-write' });
            await store.set({ key: `other||p${p.id}`, data: b(JSON.stringify(p)), concurrency: 'last-write' });
          }
          await store.set({ key: 'app||raw', data: b('not json'), concurrency: 'last-write' });
        });
        const ids = async (q: QueryRequest) => (await store.query!(q, 'app||')).results.map((r) => (r.key === 'app||raw' ? 'raw' : JSON.parse(r.data.toString()).id));

        it('EQ, IN, nested paths, AND / OR', async () => {
          assert.deepEqual(await ids({ filter: { EQ: { org: 'dev' } } }), [1, 3, 5]);
          assert.deepEqual(await ids({ filter: { EQ: { 'loc.city': 'Rome' } } }), [2, 3]);
          assert.deepEqual(await ids({ filter: { IN: { org: ['ops', 'qa'] } } }), [2, 4]);
          assert.deepEqual(await ids({ filter: { AND: [{ EQ: { org: 'dev' } }, { EQ: { 'loc.city': 'Oslo' } }] } }), [1, 5]);
          assert.deepEqual(await ids({ filter: { OR: [{ EQ: { age: 25 } }, { AND: [{ EQ: { org: 'dev' } }, { IN: { age: [41] } }] }] } }), [2, 3, 4]);
          assert.deepEqual(await ids({ filter: { EQ: { org: 'nobody' } } }), []);
        });

        it('without a filter returns every key of the prefix (and only those), with etags', async () => {
          const res = await store.query!({}, 'app||');
          assert.deepEqual(res.results.map((r) => r.key), ['app||p1', 'app||p2', 'app||p3', 'app||p4', 'app||p5', 'app||raw']);
          assert.equal(res.results[0].etag, (await store.get('app||p1'))!.etag);
          assert.equal(res.token, undefined);
          assert.deepEqual((await store.query!({}, 'none||')).results, []);
        });

        it('sorts by one or more keys, missing values last', async () => {
          assert.deepEqual(await ids({ filter: { IN: { id: [1, 2, 3, 4, 5] } }, sort: [{ key: 'age' }] }), [2, 4, 1, 5, 3]);
          assert.deepEqual(await ids({ filter: { IN: { id: [1, 2, 3, 4, 5] } }, sort: [{ key: 'age', order: 'DESC' }] }), [3, 5, 1, 2, 4]);
          assert.deepEqual(await ids({ filter: { IN: { id: [1, 2, 3, 4, 5] } }, sort: [{ key: 'loc.city', order: 'DESC' }, { key: 'age', order: 'DESC' }] }), [3, 2, 5, 1, 4]);
        });

        it('pages with limit and an opaque token', async () => {
          const q: QueryRequest = { filter: { IN: { id: [1, 2, 3, 4, 5] } }, sort: [{ key: 'id' }], page: { limit: 2 } };
          const got: number[] = [];
          let pages = 0;
          for (let token: string | undefined; ; pages++) {
            const res = await store.query!({ ...q, page: { limit: 2, token } }, 'app||');
            got.push(...res.results.map((r) => JSON.parse(r.data.toString()).id));
            if (!res.token) break;
            token = res.token;
          }
          assert.deepEqual(got, [1, 2, 3, 4, 5]);
          assert.equal(pages, 2);
          await rejectsWith(store.query!({ page: { limit: 2, token: 'garbage' } }, 'app||'), 'CM_ERR_BAD_REQUEST');
        });

        it('refuses malformed queries', async () => {
          await rejectsWith(store.query!({ filter: { NE: { a: 1 } } as never }, 'app||'), 'CM_ERR_BAD_REQUEST', /NE/);
          await rejectsWith(store.query!({ filter: { IN: { a: 1 } } as never }, 'app||'), 'CM_ERR_BAD_REQUEST');
          await rejectsWith(store.query!({ sort: [{ key: 'a', order: 'UP' as never }] }, 'app||'), 'CM_ERR_BAD_REQUEST');
        });
      });
    }
  });
}
