import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { kindFor } from '../api/index.js';
import { ApiServer } from '../apiserver/server.js';
import { MemoryStore } from '../store/index.js';
import { ApiClient } from './api-client.js';
import { Informer } from './informer.js';
import type { CrossmeshError } from '../errors.js';
import { FakeClock } from '../../test/support/fake-clock.js';
import { testApiTls } from '../../test/support/cluster-fixtures.js';

const TOKEN = 'b'.repeat(64);

describe('Informer during a long API outage', () => {
  it('1,000 back-offs leave no abort listener behind; the delays double to the cap with ±20 % jitter', async () => {
    const store = new MemoryStore();
    const { tls, ca } = await testApiTls('outage');
    const server = new ApiServer({ store, token: TOKEN, clusterName: 'outage', tls });
    await server.listen();
    const client = new ApiClient({ name: 'outage', server: server.url, token: TOKEN, ca });
    const clock = new FakeClock();
    const inf = new Informer(client, kindFor('v1', 'Service'), { minBackoffMs: 100, maxBackoffMs: 3000, clock });
    const errors: CrossmeshError[] = [];
    inf.on('error', (e) => errors.push(e));
    // The one signal the informer keeps for its whole life (what stop() aborts).
    const signal = (inf as unknown as { abort: AbortController }).abort.signal;
    inf.start();
    try {
      await inf.waitForSync();
      await server.close();
      const BACKOFFS = 1000;
      for (let i = 0; i < BACKOFFS; i++) {
        // The informer failed again and sleeps on the clock: wait for that, not for time.
        if (clock.pending === 0) await clock.nextTimer();
        const listeners = getEventListeners(signal, 'abort').length;
        assert.ok(listeners <= 1, `back-off ${i + 1}: ${listeners} abort listeners on the informer's signal`);
        clock.runAll();
      }
      if (clock.pending === 0) await clock.nextTimer();
      assert.ok(getEventListeners(signal, 'abort').length <= 1);
      assert.ok(errors.length >= BACKOFFS, `${errors.length} errors`);
      assert.ok(errors.every((e) => e.code === 'CM_ERR_UNAVAILABLE'), errors.find((e) => e.code !== 'CM_ERR_UNAVAILABLE')?.message);
      // No success in between: 100, 200, ... doubling to 3000, each within ±20 %.
      let base = 100;
      for (const [i, ms] of clock.armed.slice(0, BACKOFFS).entries()) {
        assert.ok(ms >= base * 0.8 && ms <= base * 1.2, `back-off ${i + 1}: ${ms} ms for a base of ${base} ms`);
        base = Math.min(3000, base * 2);
      }
    } finally {
      inf.stop();
      await client.close();
      store.close();
    }
  });
});
