/**
 * A topology of "hosts" for network-fault tests: one network namespace per host, each with its
 * own address on a shared bridge (10.77.0.0/24), built with Debian's iproute2 and faults applied
 * with nftables. The bridge lives in a hub namespace; the test process reaches every host over a
 * veth whose root end has 10.77.0.254, so it can drive APIs and load directly. Processes are
 * started inside a host with `ip netns exec`; everything they start (detached clusters,
 * sidecars, apps) stays in that namespace, so a fault applied to the namespace hits all of it.
 *
 * Teardown kills every process left in the namespaces and deletes them, from `destroy()`, on
 * process exit, and for topologies an earlier (killed) test run left behind.
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PREFIX = 'cmx';
export const ROOT_ADDR = '10.77.0.254';

export interface NetnsHost {
  name: string;
  /** Namespace name (≤ 15 chars: it also names the host's veth). */
  ns: string;
  addr: string;
}

/** Why namespaces can't be built here (not root, no ip/nft), or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  for (const bin of ['ip', 'nft']) {
    if (!['/usr/sbin', '/sbin', '/usr/bin', '/bin'].some((d) => existsSync(`${d}/${bin}`))) return `\`${bin}\` is not installed (apt-get install -y ${bin === 'ip' ? 'iproute2' : 'nftables'})`;
  }
  try {
    execFileSync('ip', ['netns', 'add', `${PREFIX}probe${process.pid}`], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'del', `${PREFIX}probe${process.pid}`], { stdio: 'pipe' });
  } catch (err) {
    return `cannot create a network namespace: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
  }
  return undefined;
}

function ip(args: string[]): Promise<unknown> {
  return run('ip', args).catch((err: { stderr?: string; message: string }) => {
    throw new Error(`ip ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills every process in `ns` and deletes it with its veths (synchronous: usable on exit). */
function removeNamespaceSync(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split(/\s+/).filter(Boolean);
    for (const p of pids) {
      try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ }
    }
  } catch { /* no such namespace */ }
  try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* gone */ }
}

/** Topologies of test runs that died without tearing down (their pid is in the names). */
function removeStale(): void {
  let names: string[] = [];
  try {
    names = execFileSync('ip', ['netns', 'list'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(PREFIX));
  } catch { /* none */ }
  for (const ns of names) {
    const pid = Number(/^cmx(\d+)/.exec(ns)?.[1]);
    if (!pid || !isAlive(pid) || pid === process.pid) removeNamespaceSync(ns);
  }
  try { execFileSync('ip', ['link', 'del', `${PREFIX}-root`], { stdio: 'ignore' }); } catch { /* none */ }
}

export class NetnsTopology {
  private readonly hosts = new Map<string, NetnsHost>();
  private readonly hub: string;
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;
  private readonly onExit = () => this.destroySync();

  private constructor() {
    this.hub = `${PREFIX}${process.pid}hub`;
  }

  /** Builds the hub and one namespace per host name (`short` ≤ 4 chars names its namespace). */
  static async create(hosts: { name: string; short: string }[]): Promise<NetnsTopology> {
    removeStale();
    const t = new NetnsTopology();
    process.once('exit', t.onExit);
    try {
      await ip(['netns', 'add', t.hub]);
      await ip(['-n', t.hub, 'link', 'set', 'lo', 'up']);
      await ip(['-n', t.hub, 'link', 'add', 'br0', 'type', 'bridge']);
      await ip(['-n', t.hub, 'link', 'set', 'br0', 'up']);
      // The test process's way in: a veth from the root namespace onto the bridge.
      await ip(['link', 'add', `${PREFIX}-root`, 'type', 'veth', 'peer', 'name', 'root', 'netns', t.hub]);
      await ip(['-n', t.hub, 'link', 'set', 'root', 'master', 'br0', 'up']);
      await ip(['addr', 'add', `${ROOT_ADDR}/24`, 'dev', `${PREFIX}-root`]);
      await ip(['link', 'set', `${PREFIX}-root`, 'up']);
      let n = 1;
      for (const h of hosts) {
        const ns = `${PREFIX}${process.pid}${h.short}`;
        if (ns.length > 15) throw new Error(`namespace name ${ns} is longer than 15 characters`);
        const host: NetnsHost = { name: h.name, ns, addr: `10.77.0.${n++}` };
        await ip(['netns', 'add', ns]);
        t.hosts.set(h.name, host);
        await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
        await ip(['link', 'add', ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
        await ip(['link', 'set', ns, 'netns', t.hub]);
        await ip(['-n', t.hub, 'link', 'set', ns, 'master', 'br0', 'up']);
        await ip(['-n', ns, 'addr', 'add', `${host.addr}/24`, 'dev', 'eth0']);
        await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      }
    } catch (err) {
      t.destroySync();
      throw err;
    }
    return t;
  }

  host(name: string): NetnsHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no host ${name} in the topology`);
    return h;
  }

  /** Starts `cmd` inside the host's namespace (killed at teardown if still running). */
  spawn(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.host(name).ns, cmd, ...args], opts);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Runs `cmd` inside the host's namespace to completion. */
  exec(name: string, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = this.spawn(name, cmd, args, { env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d) => (stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
      child.once('error', reject);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
      child.stdin!.end(opts.input ?? '');
    });
  }

  /** Replaces the host's fault rules (table inet cmfault) with `chains` (nft syntax), or removes them. */
  async setRules(name: string, chains: string | undefined): Promise<void> {
    const { ns } = this.host(name);
    await run('ip', ['netns', 'exec', ns, 'nft', 'destroy', 'table', 'inet', 'cmfault']).catch(async () => {
      // nft before 1.0.8 has no `destroy`: delete, tolerating a missing table.
      await run('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'cmfault']).catch(() => undefined);
    });
    if (chains === undefined) return;
    const script = `table inet cmfault {\n${chains}\n}\n`;
    await new Promise<void>((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      child.stderr!.setEncoding('utf8').on('data', (d) => (err += d));
      child.once('error', reject);
      child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`nft -f in ${ns}: ${err.trim()}\n${script}`))));
      child.stdin!.end(script);
    });
  }

  /** Drops every packet of the host's link, both ways (its loopback keeps working). */
  partition(name: string): Promise<void> {
    return this.setRules(name, `  chain in { type filter hook input priority 0; policy accept; iifname "eth0" drop; }
  chain out { type filter hook output priority 0; policy accept; oifname "eth0" drop; }`);
  }

  /** Drops packets to and from these TCP ports of the host only, on every interface (SYNs vanish). */
  blackholePorts(name: string, ports: number[]): Promise<void> {
    const set = `{ ${ports.join(', ')} }`;
    return this.setRules(name, `  chain in { type filter hook input priority 0; policy accept; tcp dport ${set} drop; }
  chain out { type filter hook output priority 0; policy accept; tcp sport ${set} drop; }`);
  }

  /** Answers every packet to these TCP ports with a reset (new and established connections). */
  resetPorts(name: string, ports: number[]): Promise<void> {
    return this.setRules(name, `  chain in { type filter hook input priority 0; policy accept; tcp dport { ${ports.join(', ')} } reject with tcp reset; }`);
  }

  /** Limits the host's outgoing bandwidth (`tc tbf`), or removes the limit (rate undefined). */
  async limitBandwidth(name: string, rate: string | undefined): Promise<void> {
    const { ns } = this.host(name);
    await run('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root']).catch(() => undefined);
    if (rate) await run('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', rate, 'burst', '32kbit', 'latency', '400ms']);
  }

  /** Removes every fault from every host. */
  async healAll(): Promise<void> {
    for (const name of this.hosts.keys()) {
      await this.setRules(name, undefined);
      await this.limitBandwidth(name, undefined);
    }
  }

  /** Pids of the processes running in a host's namespace. */
  async pids(name: string): Promise<number[]> {
    const { stdout } = await run('ip', ['netns', 'pids', this.host(name).ns]);
    return stdout.split(/\s+/).filter(Boolean).map(Number);
  }

  /** Kills what still runs in the namespaces and deletes them. Idempotent. */
  async destroy(): Promise<void> {
    this.destroySync();
  }

  private destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.removeListener('exit', this.onExit);
    for (const c of this.children) c.kill('SIGKILL');
    for (const h of this.hosts.values()) removeNamespaceSync(h.ns);
    removeNamespaceSync(this.hub);
    try { execFileSync('ip', ['link', 'del', `${PREFIX}-root`], { stdio: 'ignore' }); } catch { /* went with the hub */ }
  }
}
