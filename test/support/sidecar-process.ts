/** Spawns test/support/sidecar-worker.ts (compiled) as a real process: an app sidecar a test can kill. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { SidecarPorts } from '../../src/sidecar/sidecar.js';

const WORKER = fileURLToPath(new URL('./sidecar-worker.js', import.meta.url));

export interface SidecarProcess {
  child: ChildProcess;
  pid: number;
  ports: SidecarPorts;
  instanceId: string;
  /** stderr so far (for failure messages). */
  stderr(): string;
  readonly exited: Promise<void>;
  /** SIGKILL (a crash) or SIGTERM (clean stop); resolves once the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnSidecar(cfg: {
  identity: { clusterName: string; namespace: string; appId: string };
  api: { name: string; server: string; token: string };
  servicePort: number;
  appPort: number;
  stateDir: string;
  home: string;
  renewIntervalMs?: number;
  leaseDurationSeconds?: number;
}, timeoutMs = 15_000): Promise<SidecarProcess> {
  const { home, ...rest } = cfg;
  const child = spawn(process.execPath, [WORKER, JSON.stringify(rest)], {
    env: { ...process.env, CROSSMESH_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sidecar worker did not start within ${timeoutMs} ms: ${err}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sidecar worker exited (${code}) before it was ready: ${err}`));
    });
    child.stdout!.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      const { ports, instanceId } = JSON.parse(out.slice(0, nl)) as { ports: SidecarPorts; instanceId: string };
      resolve({
        child,
        pid: child.pid!,
        ports,
        instanceId,
        stderr: () => err,
        exited,
        async kill(signal: NodeJS.Signals = 'SIGKILL') {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          await exited;
        },
      });
    });
  });
}
