/**
 * A sidecar-like process on a pubsub.sqlite file (src/pubsub/sqlite.test.ts): subscribes to
 * TOPIC as GROUP/CONSUMER and prints one JSON line per delivery ({text, id, attempt}); answers
 * 'success', except messages whose text starts with "hold" (never answered: a consumer that
 * hangs or is killed while holding them). Prints {"ready":true} once subscribed.
 * With WORK_MS, each message takes that long and at most 4 are in flight: a consumer with a
 * bounded capacity, as a real app has, so a group's backlog is shared instead of one fast
 * poller draining it alone.
 *   node pubsub-sqlite-worker.js FILE TOPIC GROUP CONSUMER [WORK_MS]
 */
import { SqlitePubSub } from '../../src/pubsub/sqlite.js';

const [file, topic, group, consumer, workMs] = process.argv.slice(2);
const work = Number(workMs ?? 0);
const ps = new SqlitePubSub({ name: 'worker', metadata: { connectionString: file, processingTimeout: '1s', redeliverInterval: '200ms', pollInterval: '50ms' }, dataDir: '/' });
await ps.init();
await ps.subscribe({
  topic, group, consumer, maxConcurrency: work > 0 ? 4 : 32,
  handler: async (m) => {
    const text = m.data.toString();
    process.stdout.write(JSON.stringify({ text, id: m.id, attempt: m.attempt }) + '\n');
    if (text.startsWith('hold')) return new Promise(() => undefined);
    if (work > 0) await new Promise((r) => setTimeout(r, work));
    return 'success';
  },
});
// The broker's timers do not hold a process open (a sidecar's servers do): this one waits to be killed.
setInterval(() => undefined, 1 << 30);
process.stdout.write('{"ready":true}\n');
process.on('SIGTERM', () => void ps.close().then(() => process.exit(0)));
