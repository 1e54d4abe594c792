import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pubsubContract } from '../../test/support/pubsub-contract.js';
import { createPubSub } from './factory.js';
import { MemoryPubSub } from './memory.js';

const TIMINGS = { redeliverInterval: '200ms', processingTimeout: '1s' };

pubsubContract('pubsub.in-memory', async () => {
  const pubsub = new MemoryPubSub({ name: 'mem', metadata: TIMINGS, dataDir: '/nonexistent' });
  await pubsub.init();
  return { pubsub, cleanup: () => pubsub.close() };
}, { sharedGroups: false, ttl: true, processingTimeoutMs: 1000 });

test('pubsub.in-memory: bad metadata is CM_ERR_CONFIG naming the field; unknown types and versions are refused', async () => {
  assert.throws(() => new MemoryPubSub({ name: 'mem', metadata: { redeliverInterval: 'soon' }, dataDir: '' }), /pubsub mem: metadata redeliverInterval="soon" is invalid: expected a duration/);
  await assert.rejects(createPubSub('pubsub.kafka', { name: 'p', metadata: {}, dataDir: '' }), /component p: unsupported pub\/sub type "pubsub.kafka" \(supported: pubsub.in-memory, /);
  await assert.rejects(createPubSub('pubsub.in-memory', { name: 'p', metadata: {}, dataDir: '' }, 'v2'), /unsupported version "v2" of pubsub.in-memory/);
});
