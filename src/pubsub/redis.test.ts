/**
 * pubsub.redis against a real redis-server: the contract, then Redis's own cases — a restart
 * mid-stream (publishes refused while it is away, nothing acknowledged lost), two sidecars
 * splitting a group, maxLenApprox trimming, bad metadata.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { pubsubContract, recorder, until } from '../../test/support/pubsub-contract.js';
import { RedisServer } from '../../test/support/redis-server.js';
import { RedisPubSub } from './redis.js';

let redis: RedisServer;
before(async () => {
  redis = await RedisServer.start({ appendOnly: true });
});
after(async () => {
  await redis?.close();
});

const md = (extra: Record<string, string> = {}) => ({ redisHost: redis.address, redisPassword: redis.password, redeliverInterval: '200ms', processingTimeout: '1s', ...extra });
const open = async (extra: Record<string, string> = {}) => {
  const ps = new RedisPubSub({ name: 'pubsub', metadata: md(extra), dataDir: '' });
  await ps.init();
  return ps;
};
const text = (topic: string, t: string) => ({ topic, data: Buffer.from(t), contentType: 'text/plain', metadata: {} });

pubsubContract('pubsub.redis', async () => {
  const made: RedisPubSub[] = [await open()];
  return {
    pubsub: made[0],
    peer: async () => {
      const p = await open();
      made.push(p);
      return p;
    },
    cleanup: async () => {
      await Promise.all(made.map((p) => p.close()));
    },
  };
}, { sharedGroups: true, ttl: true, processingTimeoutMs: 1000 });

test('pubsub.redis: Redis restarted mid-stream: publishes while it is away fail at once (CM_ERR_STORE_UNAVAILABLE), every acknowledged one is delivered', async () => {
  const pub = await open();
  const subPs = await open();
  const r = recorder();
  const s = await subPs.subscribe({ topic: 'restart', group: 'g', consumer: 'c', handler: r.handler });
  const acked: string[] = [];
  let refused = 0;
  let restarted = false;
  const restarting = (async () => {
    await until(() => acked.length >= 100, 10_000, '100 publishes');
    await redis.restart();
    restarted = true;
  })();
  // Publishing runs through the restart and on until 50 more were stored after it.
  let after = 0;
  for (let i = 0; !restarted || after < 50; i++) {
    try {
      await pub.publish(text('restart', `m${i}`));
      acked.push(`m${i}`);
      if (restarted) after++;
    } catch (err: any) {
      assert.equal(err.code, 'CM_ERR_STORE_UNAVAILABLE');
      assert.match(err.message, new RegExp(`^pubsub pubsub: cannot publish to redis at ${redis.address.replace(/\./g, '\\.')}: `));
      assert.doesNotMatch(err.message, /maxRetriesPerRequest/);
      refused++;
      await new Promise((res) => setTimeout(res, 5));
    }
    if (i > 100_000) throw new Error('publishing never resumed');
  }
  await restarting;
  assert.ok(restarted);
  await until(() => acked.every((t) => r.texts().includes(t)), 20_000, 'every acknowledged message').catch((e) => { const got = new Set(r.texts()); throw new Error(`${e.message}: missing ${acked.filter((t) => !got.has(t)).slice(0, 20).join(',')} (${acked.filter((t) => !got.has(t)).length} of ${acked.length})`); });
  console.log(`# pubsub.redis restart: ${acked.length} acknowledged, ${refused} refused while Redis was away, ${r.got.length} deliveries`);
  assert.ok(refused > 0, 'some publishes met the restart');
  await s.close();
  await Promise.all([pub.close(), subPs.close()]);
});

test('pubsub.redis: maxLenApprox trims the stream', async () => {
  const ps = await open({ maxLenApprox: '100' });
  for (let i = 0; i < 1000; i++) await ps.publish(text('trimmed', `m${i}`));
  const raw = new Redis({ host: '127.0.0.1', port: redis.port, password: redis.password });
  const len = await raw.xlen('trimmed');
  raw.disconnect();
  assert.ok(len < 1000 && len >= 100, `XLEN ${len}`);
  await ps.close();
});

test('pubsub.redis: bad metadata and a wrong password are CM_ERR_CONFIG naming what to fix', async () => {
  assert.throws(() => new RedisPubSub({ name: 'p', metadata: { redisHost: 'host:99999' }, dataDir: '' }), /pubsub p: metadata redisHost="host:99999" is not host:port/);
  assert.throws(() => new RedisPubSub({ name: 'p', metadata: { redisHost: redis.address, concurrency: '0' }, dataDir: '' }), /pubsub p: metadata concurrency="0" is invalid: expected an integer >= 1/);
  const wrong = new RedisPubSub({ name: 'p', metadata: { redisHost: redis.address, redisPassword: 'nope' }, dataDir: '' });
  await assert.rejects(wrong.init(), (e: any) => e.code === 'CM_ERR_CONFIG' && /authentication to redis at .* failed.*redisPassword/.test(e.message));
});
