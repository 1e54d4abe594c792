/**
 * The one PubSub contract suite (src/pubsub/types.ts's delivery rules). Every backend runs it
 * (src/pubsub/memory.test.ts, sqlite.test.ts, redis.test.ts), so "passes the contract" means
 * "the Dapr runtime on top sees the same behaviour". Fixtures give short redelivery timings
 * (redeliverInterval ~200ms, processingTimeout ~1s) so the suite runs in seconds.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { DeliveryResult, PubSub, PubSubMessage, SubscribeOptions } from '../../src/pubsub/types.js';

export interface PubSubFixture {
  pubsub: PubSub;
  /** Another initialised instance on the same broker (another sidecar); only for shared groups. */
  peer?: () => Promise<PubSub>;
  /** Closes what it made and removes its data. */
  cleanup: () => Promise<void>;
}

export interface PubSubContractOptions {
  sharedGroups: boolean;
  ttl: boolean;
  /** The fixture's processingTimeout, ms (a hung consumer's messages come back after it). */
  processingTimeoutMs: number;
}

export async function until<T>(check: () => T | undefined | false, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const req = (topic: string, text: string, metadata: Record<string, string> = {}) => ({ topic, data: Buffer.from(text), contentType: 'text/plain', metadata });

/** Collects what a handler got and answers with `answer(msg)`. */
export function recorder(answer: (m: PubSubMessage) => DeliveryResult | Promise<DeliveryResult> = () => 'success') {
  const got: PubSubMessage[] = [];
  const handler = async (m: PubSubMessage) => {
    got.push(m);
    return answer(m);
  };
  return { got, handler, texts: () => got.map((m) => m.data.toString()) };
}

export function pubsubContract(label: string, make: () => Promise<PubSubFixture>, opts: PubSubContractOptions): void {
  describe(`PubSub contract: ${label}`, () => {
    let fx: PubSubFixture;
    let ps: PubSub;
    let topic: string;
    const sub = (o: Partial<SubscribeOptions> & Pick<SubscribeOptions, 'handler'>, on = ps) => on.subscribe({ topic, group: 'g1', consumer: `c-${randomUUID().slice(0, 8)}`, ...o });

    beforeEach(async () => {
      fx = await make();
      ps = fx.pubsub;
      topic = `t-${randomUUID().slice(0, 8)}`;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    it('delivers data, content type and topic, in publish order, to a group subscribed before', async () => {
      const r = recorder();
      const s = await sub({ handler: r.handler, maxConcurrency: 1 });
      for (let i = 0; i < 20; i++) await ps.publish(req(topic, `m${i}`));
      await until(() => r.got.length === 20, 5000, '20 deliveries');
      assert.deepEqual(r.texts(), [...Array(20).keys()].map((i) => `m${i}`));
      assert.equal(r.got[0].contentType, 'text/plain');
      assert.equal(r.got[0].topic, topic);
      assert.equal(r.got[0].attempt, 1);
      await s.close();
    });

    it('a group gets only messages published after it first subscribed; two groups each get every message', async () => {
      await ps.publish(req(topic, 'before'));
      const a = recorder();
      const b = recorder();
      const sa = await sub({ group: 'ga', handler: a.handler });
      const sb = await sub({ group: 'gb', handler: b.handler });
      for (let i = 0; i < 10; i++) await ps.publish(req(topic, `m${i}`));
      await until(() => a.got.length >= 10 && b.got.length >= 10, 5000, 'both groups');
      assert.deepEqual(a.texts().sort(), b.texts().sort());
      assert.ok(!a.texts().includes('before'), 'a new group starts at new messages');
      await Promise.all([sa.close(), sb.close()]);
    });

    it(`consumers of one group split the messages: none twice, none missing (${opts.sharedGroups ? 'two instances' : 'one instance'})`, async () => {
      const other = opts.sharedGroups && fx.peer ? await fx.peer() : ps;
      const a = recorder();
      const b = recorder();
      const sa = await sub({ handler: a.handler });
      const sb = await sub({ handler: b.handler }, other);
      const n = 200;
      for (let i = 0; i < n; i++) await ps.publish(req(topic, `m${i}`));
      await until(() => a.got.length + b.got.length >= n, 10_000, `${n} deliveries`);
      const all = [...a.texts(), ...b.texts()];
      assert.equal(new Set(all).size, n, 'no message twice');
      assert.equal(all.length, n);
      assert.ok(a.got.length > 0 && b.got.length > 0, `both consumers got some (${a.got.length}/${b.got.length})`);
      await Promise.all([sa.close(), sb.close()]);
    });

    it("'retry' and a rejected handler are redelivered (attempt 2); 'drop' and 'success' are not", async () => {
      const r = recorder((m) => {
        const t = m.data.toString();
        if (m.attempt === 1 && t === 'retry') return 'retry';
        if (m.attempt === 1 && t === 'throw') throw new Error('app failed');
        return t === 'drop' ? 'drop' : 'success';
      });
      const s = await sub({ handler: r.handler });
      for (const t of ['retry', 'throw', 'drop', 'ok']) await ps.publish(req(topic, t));
      await until(() => r.got.filter((m) => m.attempt === 2).length === 2, 8000, 'two redeliveries');
      const again = r.got.filter((m) => m.attempt === 2).map((m) => m.data.toString()).sort();
      assert.deepEqual(again, ['retry', 'throw']);
      const ids = r.got.filter((m) => m.data.toString() === 'retry').map((m) => m.id);
      assert.equal(ids[0], ids[1], 'the same message id');
      // A later message delivered after the redeliveries: nothing acknowledged came back.
      await ps.publish(req(topic, 'last'));
      await until(() => r.texts().includes('last'), 5000, 'the last message');
      assert.equal(r.texts().filter((t) => t === 'drop' || t === 'ok').length, 2);
      await s.close();
    });

    it('maxConcurrency bounds the handlers in flight', async () => {
      let now = 0;
      let peak = 0;
      const s = await sub({
        maxConcurrency: 3,
        handler: async () => {
          peak = Math.max(peak, ++now);
          await new Promise((r) => setTimeout(r, 15));
          now--;
          return 'success';
        },
      });
      let done = 0;
      const watcher = await sub({ group: 'count', handler: async () => (done++, 'success') });
      for (let i = 0; i < 30; i++) await ps.publish(req(topic, `m${i}`));
      await until(() => done === 30 && now === 0, 8000, 'all handled');
      assert.ok(peak <= 3, `peak ${peak}`);
      assert.ok(peak >= 2, `handlers ran concurrently (peak ${peak})`);
      await Promise.all([s.close(), watcher.close()]);
    });

    it('close() stops delivery and waits for the handler in flight', async () => {
      let release!: () => void;
      let finished = false;
      const r = recorder(async () => {
        await new Promise<void>((res) => (release = res));
        finished = true;
        return 'success' as const;
      });
      const s = await sub({ handler: r.handler, maxConcurrency: 1 });
      await ps.publish(req(topic, 'held'));
      await until(() => r.got.length === 1, 5000, 'the first delivery');
      const closing = s.close();
      let closed = false;
      void closing.then(() => (closed = true));
      await new Promise((res) => setImmediate(res));
      assert.equal(closed, false, 'close waits for the handler');
      release();
      await closing;
      assert.equal(finished, true);
      await ps.publish(req(topic, 'after-close'));
      const w = recorder();
      const s2 = await sub({ group: 'other', handler: w.handler });
      await ps.publish(req(topic, 'marker'));
      await until(() => w.texts().includes('marker'), 5000, 'the marker for another group');
      assert.equal(r.got.length, 1, 'nothing delivered after close');
      await s2.close();
    });

    it('a consumer that stops answering: its message goes to another consumer after processingTimeout', async () => {
      const other = opts.sharedGroups && fx.peer ? await fx.peer() : ps;
      const hung = recorder(() => new Promise<DeliveryResult>(() => undefined));
      const sh = await sub({ handler: hung.handler, maxConcurrency: 1 });
      await ps.publish(req(topic, 'stuck'));
      await until(() => hung.got.length === 1, 5000, 'the hung delivery');
      const t0 = Date.now();
      const good = recorder();
      const sg = await sub({ handler: good.handler }, other);
      const got = await until(() => good.got.find((m) => m.data.toString() === 'stuck'), opts.processingTimeoutMs + 5000, 'the reclaimed message');
      assert.ok(Date.now() - t0 >= opts.processingTimeoutMs * 0.5, 'not before the timeout');
      assert.ok(got.attempt >= 2, `attempt ${got.attempt}`);
      await sg.close();
      // The hung subscription's close is bounded by processingTimeout, not forever.
      await sh.close();
    });

    if (opts.ttl) {
      it('metadata.ttlInSeconds: an expired message is never delivered', async () => {
        const r = recorder();
        // Subscribed (so the group exists) but busy elsewhere: the message waits past its ttl.
        const blocker = await sub({ handler: r.handler });
        await blocker.close();
        await ps.publish(req(topic, 'short', { ttlInSeconds: '1' }));
        await ps.publish(req(topic, 'long', { ttlInSeconds: '60' }));
        const t0 = Date.now();
        await until(() => Date.now() - t0 > 1200, 3000, 'the ttl to pass');
        const s = await sub({ handler: r.handler });
        await until(() => r.texts().includes('long'), 5000, 'the long-lived message');
        assert.ok(!r.texts().includes('short'), 'the expired one was not delivered');
        await s.close();
      });
    }

    it('publishBulk stores every message in order', async () => {
      const r = recorder();
      const s = await sub({ handler: r.handler, maxConcurrency: 1 });
      assert.ok(ps.publishBulk, 'the backend publishes in bulk');
      await ps.publishBulk!([0, 1, 2, 3, 4].map((i) => req(topic, `b${i}`)));
      await until(() => r.got.length === 5, 5000, 'five deliveries');
      assert.deepEqual(r.texts(), ['b0', 'b1', 'b2', 'b3', 'b4']);
      await s.close();
    });
  });
}
