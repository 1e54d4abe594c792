import { execFile, execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The real kubectl binaries of this machine and the seed walkthrough's manifests, for the kubectl
 * suites. Machines of this kind have kubectl 1.28 on PATH and kubectl.1.27 … kubectl.1.33 beside
 * the binary it links to; no kubectl = a failing suite with the install hint, never a skip.
 */
export const SEED = fileURLToPath(new URL('../../../test/fixtures/seed-manifests/', import.meta.url));
export const KUBECTL_HINT = 'install it with `apt-get install -y kubernetes-client` (Debian), or put kubectl on PATH';

export interface KubectlBinary {
  name: string;
  path: string;
}

/** The default kubectl, then the oldest and newest side-by-side versions (1.27, 1.33) when present. */
export function kubectlBinaries(): KubectlBinary[] {
  let main = '';
  try {
    main = execFileSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' }).trim();
  } catch {
    // handled below
  }
  if (!main) throw new Error(`kubectl is not on PATH: ${KUBECTL_HINT}`);
  const dir = dirname(realpathSync(main));
  const out = [{ name: 'kubectl (default)', path: main }];
  for (const v of ['1.27', '1.33']) {
    const p = join(dir, `kubectl.${v}`);
    if (existsSync(p)) out.push({ name: `kubectl.${v}`, path: p });
  }
  return out;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a binary to completion (60 s at most) with extra environment and optional stdin. */
export function run(cmd: string, args: string[], env: Record<string, string>, input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 60_000, env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    child.stdin?.end(input ?? '');
  });
}

/** A long-running kubectl (`get -w`): its stdout so far, and a wait for a pattern in it. */
export interface Streaming {
  child: ChildProcessWithoutNullStreams;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export function spawnStreaming(cmd: string, args: string[], env: Record<string, string>): Streaming {
  const child = spawn(cmd, args, { env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (d) => {
    out += d;
    for (const w of waiters) w();
  });
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<void>((resolve) => child.on('close', () => {
    for (const w of waiters) w();
    resolve();
  }));
  return {
    child,
    output: () => out,
    waitFor(pattern, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = pattern.exec(out);
          if (m) {
            done();
            resolve(m[0]);
          } else if (child.exitCode !== null) {
            done();
            reject(new Error(`${cmd} ${args.join(' ')} exited (${child.exitCode}) before printing ${pattern}\nstdout: ${out}\nstderr: ${err}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${cmd} ${args.join(' ')} printed no ${pattern} within ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A seed manifest's documents without the Kubernetes workloads crossmesh does not serve (it runs apps with `crossmesh run`). */
export function withoutWorkloads(text: string): string {
  return text.split(/^---$/m).filter((d) => !/^kind:\s*Deployment\s*$/m.test(d)).join('---\n');
}

export interface SeedFile {
  file: string;
  namespace?: string;
  text: string;
}

/** The seed walkthrough's manifests as a user applies them to cluster-1 (placeholders filled, Deployments left out). */
export function seedFiles(): SeedFile[] {
  const member = '    apiVersion: v1\n    kind: Config\n    clusters:\n    - name: cluster-1\n      cluster: {server: "https://127.0.0.1:1"}\n    users: []\n    contexts: []\n';
  const cluster = readFileSync(join(SEED, '01-cluster.yaml'), 'utf8')
    .replace(/\$\{CLUSTER_NAME\}/g, 'cluster-1').replace(/\$\{HOST_IP\}/g, '127.0.0.1').replace(/\$\{PORT\}/g, '81')
    .replace(/^ {4}<the member's kubeconfig.*>$/m, member.trimEnd());
  return [
    { file: '01-cluster.yaml', text: cluster },
    { file: '03-statestore.yaml', namespace: 'dapr-test', text: readFileSync(join(SEED, '03-statestore.yaml'), 'utf8') },
    { file: '04-nodeapp.yaml', namespace: 'dapr-test', text: withoutWorkloads(readFileSync(join(SEED, '04-nodeapp.yaml'), 'utf8').replace(/\$\{CLUSTER_NAME\}/g, 'cluster-1')) },
    { file: '05-curl.yaml', namespace: 'curl', text: withoutWorkloads(readFileSync(join(SEED, '05-curl.yaml'), 'utf8')) },
    { file: '06-serviceexport.yaml', namespace: 'dapr-test', text: readFileSync(join(SEED, '06-serviceexport.yaml'), 'utf8') },
    { file: '07-globaltrafficpolicy.yaml', namespace: 'dapr-test', text: readFileSync(join(SEED, '07-globaltrafficpolicy.yaml'), 'utf8') },
  ];
}
