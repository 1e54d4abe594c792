/**
 * The `crossmesh sidecar` process: one sidecar (sidecar.ts) plus the app it supervises.
 *
 * Starts the listeners, spawns the app (argv as given, no shell) with the sidecar env, waits
 * until the app listens on APP_PORT, registers the endpoint, then writes the ready file
 * `sidecar.json` into the instance dir. App exits -> deregister, exit with the app's code.
 * SIGTERM/SIGINT -> deregister first, then SIGTERM the app (SIGKILL after 5 s), remove the dir.
 * `crossmesh run` runs this in its own process (foreground) or spawns it detached.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { constants } from 'node:os';
import type { ApiEndpoint } from '../client/kubeconfig.js';
import { toCrossmeshError } from '../errors.js';
import { log } from '../util/log.js';
import { startSidecar, type RunningSidecar } from './sidecar.js';
import { EXIT_FILE, RECORD_FILE, type SidecarProcessConfig, type SidecarRecord } from './record.js';

// The config and ready-file shapes are in record.ts (the CLI reads them without loading the sidecar).
export { EXIT_FILE, RECORD_FILE, type SidecarProcessConfig, type SidecarRecord } from './record.js';

const STOP_GRACE_MS = 5000;

function writeAtomic(file: string, value: unknown): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(value, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
}

/** Runs until the app exits or the process is told to stop; resolves with the exit code. */
export async function runSidecarProcess(cfg: SidecarProcessConfig, api: ApiEndpoint): Promise<number> {
  const label = `sidecar ${cfg.cluster}/${cfg.namespace}/${cfg.appId}-${cfg.instanceId}`;
  const sidecar: RunningSidecar = await startSidecar({
    identity: { clusterName: cfg.cluster, namespace: cfg.namespace, appId: cfg.appId, instanceId: cfg.instanceId },
    serviceAccount: cfg.serviceAccount,
    ...(cfg.daprConfig ? { daprConfig: cfg.daprConfig } : {}),
    ...(cfg.appProtocol ? { appProtocol: cfg.appProtocol } : {}),
    ...(cfg.connectTimeoutMs !== undefined ? { dataPlane: { connectTimeoutMs: cfg.connectTimeoutMs } } : {}),
    api,
    servicePort: cfg.servicePort,
    processMetrics: true,
    // POST /v1.0/shutdown stops the whole instance (deregister, app, sidecar), like SIGTERM.
    onShutdown: () => process.kill(process.pid, 'SIGTERM'),
  });
  const p = sidecar.ports;
  log.info(`${label}: outbound 127.0.0.1:${p.outbound}, ${p.inbound !== undefined ? `inbound 127.0.0.1:${p.inbound} -> app 127.0.0.1:${p.app}, ` : 'client only (no --app-port), '}dapr http ${p.http}, grpc ${p.grpc}${cfg.appProtocol === 'grpc' ? ', app protocol grpc' : ''}`);

  let out: number | undefined;
  if (cfg.appLog) out = openSync(cfg.appLog, 'a');
  let app: ChildProcess;
  try {
    app = spawn(cfg.command[0], cfg.command.slice(1), {
      env: { ...process.env, ...sidecar.appEnv },
      stdio: out !== undefined ? ['ignore', out, out] : 'inherit',
    });
  } finally {
    if (out !== undefined) closeSync(out);
  }

  return new Promise<number>((resolve) => {
    let finished = false;
    let stopping: string | undefined;
    let appExit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let killTimer: NodeJS.Timeout | undefined;

    const finish = async (code: number) => {
      if (finished) return;
      finished = true;
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      await sidecar.close();
      if (stopping || code === 0 || !cfg.appLog) {
        rmSync(cfg.dir, { recursive: true, force: true });
      } else {
        // A detached app that failed: keep its logs for `crossmesh status` / the user; stop/down remove them.
        rmSync(join(cfg.dir, RECORD_FILE), { force: true });
        writeAtomic(join(cfg.dir, EXIT_FILE), { code, at: new Date().toISOString() });
      }
      if (killTimer) clearTimeout(killTimer);
      resolve(code);
    };

    const stop = async (signal: NodeJS.Signals) => {
      if (stopping || finished) return;
      stopping = signal;
      log.info(`${label}: ${signal}: deregistering, then stopping the app`);
      // Deregister first, so no new caller is sent here while the app shuts down.
      await sidecar.registration?.close(true);
      if (appExit) return void finish(128 + (constants.signals[signal] ?? 0));
      if (app.pid !== undefined) {
        try { app.kill('SIGTERM'); } catch { /* gone */ }
        killTimer = setTimeout(() => {
          log.warn(`${label}: app (pid ${app.pid}) still running ${STOP_GRACE_MS} ms after SIGTERM: SIGKILL`);
          try { app.kill('SIGKILL'); } catch { /* gone */ }
        }, STOP_GRACE_MS);
      }
    };
    const onTerm = () => void stop('SIGTERM');
    const onInt = () => void stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);

    app.once('error', (err) => {
      log.error(`${label}: cannot start the app \`${cfg.command.join(' ')}\`: ${err.message}`);
      appExit = { code: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 127 : 126, signal: null };
      void finish(appExit.code!);
    });
    app.once('exit', (code, signal) => {
      appExit = { code, signal };
      if (stopping) {
        void finish(128 + (constants.signals[stopping as NodeJS.Signals] ?? 0));
        return;
      }
      log.info(`${label}: app exited (${code !== null ? `code ${code}` : `signal ${signal}`}); deregistering`);
      void finish(exitCodeOf(code, signal));
    });

    void (async () => {
      try {
        if (sidecar.ports.app !== undefined) {
          const deadline = Date.now() + (cfg.appStartTimeoutMs ?? 30_000);
          let warned = false;
          while (!appExit && !stopping && !(await canConnect(sidecar.ports.app))) {
            if (!warned && Date.now() > deadline) {
              warned = true;
              log.warn(`${label}: the app does not listen on APP_PORT=${sidecar.ports.app} yet; its endpoint is registered once it does (the app must listen on process.env.APP_PORT)`);
            }
            await new Promise((r) => setTimeout(r, 50));
          }
          if (appExit || stopping) return;
          if (cfg.appProtocol === 'grpc') {
            // A gRPC app is up once an HTTP/2 connection to it is (not just a TCP accept).
            let warnedGrpc = false;
            while (!appExit && !stopping && !(await sidecar.appReady(1000))) {
              if (!warnedGrpc && Date.now() > deadline) {
                warnedGrpc = true;
                log.warn(`${label}: APP_PORT=${sidecar.ports.app} accepts connections but no HTTP/2 (gRPC) connection to it comes up yet; the app must serve gRPC there (--app-protocol grpc)`);
              }
            }
            if (appExit || stopping) return;
          }
          if (!(await sidecar.register(5000))) log.warn(`${label}: not registered yet (cluster API unreachable?); retrying in the background`);
          // Pub/sub: the app is up, so its subscriptions can be read (daprd reads them once the app port answers).
          void sidecar.startSubscriptions().catch((err) => log.warn(`${label}: subscriptions: ${toCrossmeshError(err).message}`));
        }
        if (appExit || stopping || finished) return;
        const record: SidecarRecord = {
          cluster: cfg.cluster,
          namespace: cfg.namespace,
          appId: cfg.appId,
          instanceId: cfg.instanceId,
          pid: process.pid,
          appPid: app.pid!,
          ports: sidecar.ports,
          env: sidecar.appEnv,
          command: cfg.command,
          detached: cfg.appLog !== undefined,
          logs: cfg.appLog ? { app: cfg.appLog, sidecar: cfg.sidecarLog } : undefined,
          startedAt: new Date().toISOString(),
          identity: sidecar.meshIdentity(),
        };
        writeAtomic(join(cfg.dir, RECORD_FILE), record);
        // `status` shows the certificate's expiry: keep the record current across rotations.
        sidecar.onRotate(() => {
          if (!finished) writeAtomic(join(cfg.dir, RECORD_FILE), { ...record, identity: sidecar.meshIdentity() });
        });
        log.info(`${label}: ready (app pid ${app.pid})`);
      } catch (err) {
        log.error(`${label}: ${toCrossmeshError(err).message}`);
        void stop('SIGTERM');
      }
    })();
  });
}
