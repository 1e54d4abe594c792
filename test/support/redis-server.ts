/**
 * Test helper (also for e2e tests): a real `redis-server` on a free port in a temp dir.
 * The port is picked by binding port 0 and closing (redis-server can't report a port 0 choice),
 * and kept across restart(), so clients reconnect to the same address.
 */
import { freePort } from '../../src/util/net.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export const REDIS_NOT_FOUND = 'redis-server not found: install it with apt-get install -y redis-server (CI\'s .ci/run does this)';

export interface RedisServerOptions {
  /** Default: a random password (always set, so auth is exercised). */
  password?: string;
  /** appendonly yes: data survives restart() (for reliability tests). Default false. */
  appendOnly?: boolean;
}

/** One raw RESP round trip: AUTH + PING; resolves true on PONG. */
function ping(port: number, password: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write(`AUTH ${password}\r\nPING\r\n`));
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('+PONG')) done(true);
      else if (buf.includes('-')) done(false);
    });
  });
}

export class RedisServer {
  readonly host = '127.0.0.1';
  readonly password: string;
  port = 0;
  private proc?: ChildProcess;
  private exited?: Promise<void>;
  private readonly dir: string;
  private readonly appendOnly: boolean;
  private output = '';

  private constructor(opts: RedisServerOptions) {
    this.password = opts.password ?? randomBytes(12).toString('hex');
    this.appendOnly = opts.appendOnly ?? false;
    this.dir = mkdtempSync(join(tmpdir(), 'crossmesh-redis-'));
  }

  /** Throws REDIS_NOT_FOUND when redis-server is not installed (tests must fail, not skip). */
  static async start(opts: RedisServerOptions = {}): Promise<RedisServer> {
    const probe = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
    if (probe.error) throw new Error(REDIS_NOT_FOUND);
    const server = new RedisServer(opts);
    server.port = await freePort();
    await server.launch();
    return server;
  }

  /** host:port, as state.redis's `redisHost` metadata wants it. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  private async launch(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', this.host, '--save', '', '--appendonly', this.appendOnly ? 'yes' : 'no', '--requirepass', this.password, '--dir', this.dir, '--daemonize', 'no'];
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.output = '';
    proc.stdout!.on('data', (d) => (this.output = (this.output + d.toString()).slice(-4000)));
    proc.stderr!.on('data', (d) => (this.output = (this.output + d.toString()).slice(-4000)));
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${this.output}`);
      if (await ping(this.port, this.password)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.kill('SIGKILL');
    throw new Error(`redis-server on port ${this.port} did not answer PING within 10 s: ${this.output}`);
  }

  /** Stops the server: SIGTERM (SIGKILL with `kill: true`, to emulate a crash). */
  async stop(kill = false): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(kill ? 'SIGKILL' : 'SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }

  /** Stops and starts again on the same port and dir (data kept only with appendOnly). */
  async restart(kill = false): Promise<void> {
    await this.stop(kill);
    await this.launch();
  }

  /** Stops the server and removes its directory. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
