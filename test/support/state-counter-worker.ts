/**
 * Test helper process: `node state-counter-worker.js <type> <config-json> <key> <clients> <times>`
 * runs the counter loop against its own store instance (a second "sidecar process") and prints
 * `{"successes":..,"conflicts":..}` on stdout. It waits for "go" on stdin so all processes start
 * contending at the same moment.
 */
import { createStateStore } from '../../src/state/factory.js';
import { runCounters } from './state-counter.js';

const [type, configJson, key, clients, times] = process.argv.slice(2);
const store = await createStateStore(type, JSON.parse(configJson));
await store.init();
process.stdout.write('ready\n');
await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
const result = await runCounters([store], key, Number(clients), Number(times));
await store.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
