/**
 * Active liveness of the remote gateways a sidecar tunnels through. A dead cluster on another
 * host does not refuse connections: its packets vanish, and a request on an established tunnel
 * just waits. So the sidecar keeps one small connection per remote gateway mesh port and sends
 * a ping (`OPTIONS * HTTP/1.1`, answered 204 by the gateway's tunnel listener) every
 * `intervalMs`; a ping unanswered for `deadAfterMs`, a failed connect or a reset makes the
 * gateway `dead` at once (the router then stops picking it and aborts the requests in flight
 * on its tunnels), and the first answer after that makes it `alive` again.
 *
 * The same pings measure each gateway's round trip (EWMA): a gateway much slower than the
 * fastest live one (`slowMarginMs` more and twice as slow) is `slow`, and the router prefers
 * the others while it is (latency-aware balancing; with no other choice it is still used).
 */
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { H1Parser, isParseError, RESPONSE, type ParserEvents } from '../proxy/h1/llhttp.js';

export interface GatewayLivenessOptions {
  /** Time between pings (default 250 ms). */
  intervalMs?: number;
  /** A ping not answered within this is a dead gateway (default 750 ms: dead within ~1 s of the last packet). */
  deadAfterMs?: number;
  /** TCP connect bound of the ping connection (default 500 ms). */
  connectTimeoutMs?: number;
  /** How much slower than the fastest live gateway (and at least twice as slow) makes one slow (default 100 ms). */
  slowMarginMs?: number;
}

export type GatewayState = 'unknown' | 'alive' | 'slow' | 'dead';

interface LivenessEvents {
  /** A gateway's state changed (`key` = `host:port`). */
  change: [key: string, state: GatewayState, reason: string];
}

const PING = 'OPTIONS * HTTP/1.1\r\nhost: crossmesh-liveness\r\n\r\n';
/** Weight of the newest round trip in the EWMA. */
const ALPHA = 0.3;

/** One gateway's ping loop. */
class Probe implements ParserEvents {
  state: GatewayState = 'unknown';
  rttMs = 0;
  private socket: Socket | undefined;
  private parser: H1Parser | undefined;
  private sentAt = 0;
  private deadline: NodeJS.Timeout | undefined;
  private lateCheck: NodeJS.Timeout | undefined;
  private next: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(readonly key: string, readonly host: string, readonly port: number, private readonly owner: GatewayLiveness) {
    this.open();
  }

  private open(): void {
    if (this.stopped) return;
    const o = this.owner.settings;
    const s = connect({ host: this.host, port: this.port, noDelay: true });
    this.socket = s;
    this.parser = new H1Parser(RESPONSE, this);
    s.setTimeout(o.connectTimeoutMs);
    s.once('timeout', () => this.down(s, `no TCP connect within ${o.connectTimeoutMs} ms`));
    s.once('connect', () => {
      s.setTimeout(0);
      this.ping();
    });
    s.on('data', (d: Buffer) => {
      const r = this.parser!.execute(d);
      if (isParseError(r)) this.down(s, `malformed ping answer (${r.code})`);
    });
    s.once('error', (err: Error & { code?: string }) => this.down(s, err.code ?? err.message));
    s.once('close', () => this.down(s, 'connection closed'));
  }

  private ping(): void {
    if (this.stopped || this.socket === undefined) return;
    this.sentAt = performance.now();
    this.socket.write(PING, 'latin1');
    const s = this.socket;
    this.deadline = setTimeout(() => this.down(s, `no answer to a liveness ping within ${this.owner.settings.deadAfterMs} ms`), this.owner.settings.deadAfterMs);
    // A gateway that turned slow is known to be slow once its ping is overdue, not only when the
    // answer finally arrives (a +300 ms link would otherwise take a whole slow round trip).
    const lateAfter = this.owner.slowLineMs(this);
    if (lateAfter < this.owner.settings.deadAfterMs) this.lateCheck = setTimeout(() => this.late(), lateAfter);
  }

  private late(): void {
    if (this.sentAt === 0) return;
    this.rttMs = Math.max(this.rttMs, performance.now() - this.sentAt);
    this.owner.reclassify();
  }

  onHead(): number {
    return 0;
  }

  onBody(): void {}

  onComplete(): void {
    if (this.sentAt === 0) return;
    clearTimeout(this.deadline);
    clearTimeout(this.lateCheck);
    const rtt = performance.now() - this.sentAt;
    this.sentAt = 0;
    this.rttMs = this.state === 'dead' || this.state === 'unknown' ? rtt : this.rttMs + ALPHA * (rtt - this.rttMs);
    if (this.state === 'dead' || this.state === 'unknown') this.owner.set(this, 'alive', 'answers liveness pings');
    this.owner.reclassify();
    this.next = setTimeout(() => this.ping(), Math.max(0, this.owner.settings.intervalMs - rtt));
  }

  /** `s` went bad (a late event of an earlier socket is ignored). */
  private down(s: Socket, reason: string): void {
    if (this.socket !== s) return;
    clearTimeout(this.deadline);
    clearTimeout(this.lateCheck);
    clearTimeout(this.next);
    this.socket = undefined;
    this.sentAt = 0;
    s.destroy();
    this.parser?.close();
    if (this.stopped) return;
    this.owner.set(this, 'dead', reason);
    this.next = setTimeout(() => this.open(), this.owner.settings.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.deadline);
    clearTimeout(this.lateCheck);
    clearTimeout(this.next);
    this.socket?.destroy();
    this.socket = undefined;
  }
}

export class GatewayLiveness extends EventEmitter<LivenessEvents> {
  readonly settings: Required<GatewayLivenessOptions>;
  private readonly probes = new Map<string, Probe>();
  private closed = false;

  constructor(opts: GatewayLivenessOptions = {}) {
    super();
    this.settings = {
      intervalMs: opts.intervalMs ?? 250,
      deadAfterMs: opts.deadAfterMs ?? 750,
      connectTimeoutMs: opts.connectTimeoutMs ?? 500,
      slowMarginMs: opts.slowMarginMs ?? 100,
    };
  }

  /** Probes exactly these gateways (`host:port` keys): new ones start, gone ones stop. */
  retain(gateways: ReadonlyMap<string, { host: string; port: number }>): void {
    if (this.closed) return;
    for (const [key, p] of this.probes) {
      if (!gateways.has(key)) {
        p.stop();
        this.probes.delete(key);
      }
    }
    for (const [key, g] of gateways) if (!this.probes.has(key)) this.probes.set(key, new Probe(key, g.host, g.port, this));
  }

  state(key: string): GatewayState {
    return this.probes.get(key)?.state ?? 'unknown';
  }

  /** Every probed gateway with its state and round trip (status output, tests). */
  snapshot(): Array<{ gateway: string; state: GatewayState; rttMs: number }> {
    return [...this.probes.values()].map((p) => ({ gateway: p.key, state: p.state, rttMs: Math.round(p.rttMs * 10) / 10 }));
  }

  /** @internal a probe's state changed. */
  set(p: Probe, state: GatewayState, reason: string): void {
    if (p.state === state) return;
    p.state = state;
    this.emit('change', p.key, state, reason);
  }

  /** @internal the round trip past which `p` is slow next to the fastest other live gateway (Infinity: none). */
  slowLineMs(p: Probe): number {
    let best = Infinity;
    for (const o of this.probes.values()) if (o !== p && (o.state === 'alive' || o.state === 'slow') && o.rttMs < best) best = o.rttMs;
    return Math.max(best + this.settings.slowMarginMs, 2 * best) + 1;
  }

  /** @internal after a round trip (or an overdue ping): which live gateways are slow relative to the fastest. */
  reclassify(): void {
    let best = Infinity;
    for (const p of this.probes.values()) if ((p.state === 'alive' || p.state === 'slow') && p.rttMs < best) best = p.rttMs;
    const m = this.settings.slowMarginMs;
    for (const p of this.probes.values()) {
      if (p.state !== 'alive' && p.state !== 'slow') continue;
      const slow = p.rttMs > best + m && p.rttMs > 2 * best;
      // Back to alive only well under the line (no flapping at the edge).
      if (slow && p.state === 'alive') this.set(p, 'slow', `liveness round trip ${Math.round(p.rttMs)} ms vs ${Math.round(best)} ms for the fastest gateway`);
      else if (!slow && p.state === 'slow' && p.rttMs < best + m / 2) this.set(p, 'alive', `liveness round trip back to ${Math.round(p.rttMs)} ms`);
    }
  }

  close(): void {
    this.closed = true;
    for (const p of this.probes.values()) p.stop();
    this.probes.clear();
  }
}
