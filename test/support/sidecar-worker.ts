/**
 * Test helper process: `node sidecar-worker.js <config-json>` runs one app sidecar (startSidecar,
 * the code `crossmesh sidecar` runs) in front of an app that already listens on `appPort`, and
 * prints `{"ports":..,"instanceId":..}` once the endpoint is registered. A test SIGKILLs it to
 * make an endpoint die the way a crashed process does (sockets reset, the lease left to expire);
 * SIGTERM closes it cleanly (deregisters first).
 */
import { startSidecar } from '../../src/sidecar/sidecar.js';

interface WorkerConfig {
  identity: { clusterName: string; namespace: string; appId: string };
  api: { name: string; server: string; token: string };
  servicePort: number;
  appPort: number;
  stateDir: string;
  renewIntervalMs?: number;
  leaseDurationSeconds?: number;
}

const cfg = JSON.parse(process.argv[2]) as WorkerConfig;
const car = await startSidecar({
  identity: cfg.identity,
  api: cfg.api,
  servicePort: cfg.servicePort,
  appPort: cfg.appPort,
  daprStateDir: cfg.stateDir,
  renewIntervalMs: cfg.renewIntervalMs,
  leaseDurationSeconds: cfg.leaseDurationSeconds,
});
process.stdout.write(`${JSON.stringify({ ports: car.ports, instanceId: car.identity.instanceId })}\n`);
process.once('SIGTERM', () => {
  void car.close().then(() => process.exit(0));
});
