/**
 * The load generator, run as its own process by the harness (so its CPU is never charged to
 * the processes being measured, and it does not share their event loop).
 *
 *   node dist/bench/load.js '<LoadSpec JSON>'
 *
 * prints `{"phase":"measure"}` on stdout when the measured window starts (after the warmup: the
 * harness reads /proc CPU counters of the measured processes then), then one LoadResult JSON line
 * when it ends.
 *
 * - `rate` / `burst`: open loop over N keep-alive connections with a fixed schedule, on raw
 *   `net` sockets (a hand-written HTTP/1.1 client: pre-serialised request, minimal response
 *   parser with content-length and chunked bodies, so the generator costs little CPU and adds
 *   no pool or queue of its own). Request i goes on connection i % N:
 *     rate:  at t0 + i / rate               (connection k sends at t0 + (n*N + k) / rate: arrivals
 *                                            evenly spaced, each connection every N / rate)
 *     burst: at t0 + floor(i / N) * N / rate (all N connections fire together every N / rate,
 *                                            like `hey -c N -q rate/N`)
 *   Latency of each request: from the moment its bytes are written to the socket to the last
 *   byte of its response, kept exactly (no histogram). A request whose connection is still
 *   waiting for the previous reply is written when that reply arrives (HTTP/1.1, no
 *   pipelining); how late each write was against its schedule is reported too (`sendLag`),
 *   and the latency from the scheduled time (`fromScheduleMs`, which includes that lateness
 *   and the timer's own jitter) beside it.
 * - `closed`: closed loop (N connections, each sends its next request when the previous answer
 *   arrived): throughput. With `wrk` (C; `wrk -t1 -cN -dD -s script.lua`, the Lua script
 *   written to `tmpDir`) when the harness found it, else autocannon (in this Node process,
 *   which then takes a core of its own from the system under test on a 2-core machine).
 * Requests cycle through `requests` (e.g. a state save then a get).
 */
import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export interface LoadRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface LoadSpec {
  mode: 'rate' | 'burst' | 'closed';
  /** http://127.0.0.1:port */
  origin: string;
  requests: LoadRequest[];
  connections: number;
  /** Requests per second (rate / burst modes). */
  rate?: number;
  durationMs: number;
  /** Load before measuring, not recorded (rate / burst: the same schedule; closed: a run of its own). */
  warmupMs?: number;
  /** Closed mode: path of the wrk binary; autocannon when absent. */
  wrk?: string;
  /** Where the wrk Lua script is written. */
  tmpDir?: string;
  /** Dapr gRPC state calls instead of HTTP requests (bench/grpc-load.ts; `origin` and `requests` unused). */
  grpc?: import('./grpc-load.js').GrpcLoad;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface LoadResult {
  mode: 'rate' | 'burst' | 'closed';
  /** Closed mode: which load generator measured. */
  tool?: 'wrk' | 'autocannon' | 'grpc-js';
  durationMs: number;
  requests: number;
  ok: number;
  /** Non-2xx answers and transport errors. */
  errors: number;
  firstError?: string;
  rps: number;
  /** rate / burst: write → full reply; closed with wrk: wrk's own figures (no max/mean). */
  latencyMs?: Percentiles;
  /** rate / burst: scheduled send time → full reply. */
  fromScheduleMs?: Percentiles;
  /** rate / burst: how late requests were written against their schedule (timer jitter, busy connection). */
  sendLagMs?: { p50: number; p99: number; max: number };
  /** rate / burst: requests written late because their connection still awaited the previous reply. */
  queued?: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

function stats(values: Float64Array): Percentiles {
  const sorted = values.slice().sort();
  let sum = 0;
  for (const x of sorted) sum += x;
  return {
    p50: round3(percentile(sorted, 50)),
    p90: round3(percentile(sorted, 90)),
    p99: round3(percentile(sorted, 99)),
    max: round3(sorted[sorted.length - 1] ?? NaN),
    mean: round3(sum / sorted.length),
  };
}

function headersOf(r: LoadRequest, host: string): Record<string, string> {
  const h: Record<string, string> = { host };
  if (r.body !== undefined) h['content-type'] = 'application/json';
  for (const [k, v] of Object.entries(r.headers ?? {})) h[k.toLowerCase()] = v;
  return h;
}

function serialise(r: LoadRequest, host: string): Buffer {
  const body = r.body !== undefined ? Buffer.from(r.body) : undefined;
  const h = headersOf(r, host);
  if (body) h['content-length'] = String(body.length);
  let head = `${r.method} ${r.path} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(h)) head += `${k}: ${v}\r\n`;
  head += '\r\n';
  return body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : Buffer.from(head, 'latin1');
}

// ---------------------------------------------------------------------------------------------
// open loop on raw sockets

const CRLF2 = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');

type Done = (status: number) => void;

/** One keep-alive HTTP/1.1 connection that parses responses just enough to know where each ends. */
class Conn {
  socket!: Socket;
  private buf: Buffer = Buffer.alloc(0);
  private state: 'head' | 'body' | 'chunk-size' | 'chunk-data' | 'trailers' | 'until-close' = 'head';
  private remaining = 0;
  private status = 0;
  private closeAfter = false;
  private onDone: Done | undefined;
  private onFail: ((err: Error) => void) | undefined;

  constructor(private readonly port: number, private readonly host: string) {}

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = connect({ port: this.port, host: this.host, noDelay: true });
      this.socket = s;
      this.buf = Buffer.alloc(0);
      this.state = 'head';
      s.once('connect', () => resolve());
      // Events of a socket this connection has already replaced are ignored.
      s.on('error', (err) => {
        reject(err);
        if (s === this.socket) this.fail(err);
      });
      s.on('data', (d: Buffer) => {
        if (s === this.socket) this.data(d);
      });
      s.on('close', () => {
        if (s !== this.socket) return;
        if (this.state === 'until-close' && this.onDone) return this.finish();
        this.fail(new Error('connection closed before the response ended'));
      });
    });
  }

  /** Writes one request; `done` gets the status when its response has fully arrived. */
  send(bytes: Buffer, done: Done, fail: (err: Error) => void): void {
    this.onDone = done;
    this.onFail = fail;
    this.socket.write(bytes);
  }

  private fail(err: Error): void {
    const f = this.onFail;
    this.onDone = this.onFail = undefined;
    if (f) f(err);
  }

  private finish(): void {
    const d = this.onDone;
    this.onDone = this.onFail = undefined;
    this.state = 'head';
    const close = this.closeAfter;
    if (close) this.socket.destroy();
    if (d) d(this.status);
  }

  get closing(): boolean {
    return this.closeAfter || this.socket.destroyed;
  }

  private data(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      switch (this.state) {
        case 'head': {
          const i = this.buf.indexOf(CRLF2);
          if (i < 0) return;
          const head = this.buf.toString('latin1', 0, i);
          this.buf = this.buf.subarray(i + 4);
          this.status = Number(head.slice(9, 12));
          const h = head.toLowerCase();
          this.closeAfter = /\r\nconnection:[ \t]*close/.test(h) || head.startsWith('HTTP/1.0');
          if (this.status >= 100 && this.status < 200) continue; // 100-continue: the real head follows
          const cl = /\r\ncontent-length:[ \t]*(\d+)/.exec(h);
          if (/\r\ntransfer-encoding:[^\r]*chunked/.test(h)) this.state = 'chunk-size';
          else if (this.status === 204 || this.status === 304) {
            this.finish();
            continue;
          } else if (cl) {
            this.remaining = Number(cl[1]);
            this.state = 'body';
          } else this.state = 'until-close';
          continue;
        }
        case 'body': {
          const take = Math.min(this.remaining, this.buf.length);
          this.remaining -= take;
          this.buf = this.buf.subarray(take);
          if (this.remaining > 0) return;
          this.finish();
          continue;
        }
        case 'chunk-size': {
          const i = this.buf.indexOf(CRLF);
          if (i < 0) return;
          const size = parseInt(this.buf.toString('latin1', 0, i).split(';')[0], 16);
          this.buf = this.buf.subarray(i + 2);
          if (size === 0) this.state = 'trailers';
          else {
            this.remaining = size + 2;
            this.state = 'chunk-data';
          }
          continue;
        }
        case 'chunk-data': {
          const take = Math.min(this.remaining, this.buf.length);
          this.remaining -= take;
          this.buf = this.buf.subarray(take);
          if (this.remaining > 0) return;
          this.state = 'chunk-size';
          continue;
        }
        case 'trailers': {
          const i = this.buf.indexOf(CRLF);
          if (i < 0) return;
          const empty = i === 0;
          this.buf = this.buf.subarray(i + 2);
          if (empty) this.finish();
          continue;
        }
        case 'until-close':
          this.buf = Buffer.alloc(0);
          return;
      }
    }
  }
}

function markMeasure(): void {
  process.stdout.write('{"phase":"measure"}\n');
}

async function openLoop(spec: LoadSpec): Promise<LoadResult> {
  const rate = spec.rate ?? 1000;
  const C = spec.connections;
  const url = new URL(spec.origin);
  const port = Number(url.port);
  const hostname = url.hostname;
  const payloads = spec.requests.map((r) => serialise(r, r.headers?.host ?? url.host));
  const conns = Array.from({ length: C }, () => new Conn(port, hostname));
  await Promise.all(conns.map((c) => c.open()));

  const warm = Math.floor((rate * (spec.warmupMs ?? 0)) / 1000);
  const measured = Math.floor((rate * spec.durationMs) / 1000);
  const total = warm + measured;
  const burst = spec.mode === 'burst';
  /** Scheduled send time of request i, ms after t0. */
  const at = (i: number) => (burst ? (Math.floor(i / C) * C * 1000) / rate : (i * 1000) / rate);

  const lat = new Float64Array(measured);
  const fromSched = new Float64Array(measured);
  const lag = new Float64Array(measured);
  let recorded = 0;
  let ok = 0;
  let errors = 0;
  let queued = 0;
  let firstError: string | undefined;
  let done = 0;
  /** Per connection: scheduled indexes waiting for the connection to be free. */
  const waiting: number[][] = conns.map(() => []);
  const busy = new Array<boolean>(C).fill(false);
  let t0 = 0;
  let tMeasure = 0;
  let tEnd = 0;

  return new Promise<LoadResult>((resolve) => {
    const complete = () => {
      if (done < total) return;
      tEnd = performance.now();
      resolve({
        mode: spec.mode,
        durationMs: Math.round(tEnd - tMeasure),
        requests: measured,
        ok,
        errors,
        firstError,
        rps: Math.round((measured / (tEnd - tMeasure)) * 1000),
        latencyMs: stats(lat.subarray(0, recorded)),
        fromScheduleMs: stats(fromSched.subarray(0, recorded)),
        sendLagMs: (() => {
          const s = stats(lag.subarray(0, recorded));
          return { p50: s.p50, p99: s.p99, max: s.max };
        })(),
        queued,
      });
    };
    const write = (k: number, i: number) => {
      busy[k] = true;
      const sched = t0 + at(i);
      const start = performance.now();
      const finished = (status: number | Error) => {
        const end = performance.now();
        if (i >= warm) {
          const j = i - warm;
          if (j < measured) {
            lat[recorded] = end - start;
            fromSched[recorded] = end - sched;
            lag[recorded] = Math.max(0, start - sched);
            recorded++;
          }
          if (typeof status === 'number' && status >= 200 && status < 300) ok++;
          else {
            errors++;
            firstError ??= typeof status === 'number' ? `HTTP ${status}` : status.message;
          }
        }
        done++;
        busy[k] = false;
        const next = () => {
          const n = waiting[k].shift();
          if (n !== undefined) write(k, n);
          complete();
        };
        if (conns[k].closing || status instanceof Error) {
          conns[k].socket.destroy();
          conns[k].open().then(next, (err: Error) => {
            // Cannot reconnect: fail what waits on this connection.
            firstError ??= err.message;
            for (const n of waiting[k].splice(0)) {
              if (n >= warm) errors++;
              done++;
            }
            complete();
          });
        } else next();
      };
      conns[k].send(payloads[i % payloads.length], finished, finished);
    };
    let next = 0;
    const dispatch = (i: number) => {
      const k = i % C;
      if (i === warm && warm > 0) {
        tMeasure = performance.now();
        markMeasure();
      }
      if (busy[k]) {
        if (i >= warm) queued++;
        waiting[k].push(i);
      } else write(k, i);
    };
    const tick = () => {
      const now = performance.now() - t0;
      while (next < total && at(next) <= now) dispatch(next++);
      if (next < total) setTimeout(tick, Math.max(0, at(next) - (performance.now() - t0)));
    };
    t0 = performance.now();
    if (warm === 0) {
      tMeasure = t0;
      markMeasure();
    }
    if (total === 0) return complete();
    tick();
  }).finally(() => {
    for (const c of conns) c.socket.destroy();
  });
}

// ---------------------------------------------------------------------------------------------
// closed loop

const luaString = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r')}"`;

/** The wrk script: the request(s) to send and a `done` hook printing the summary as JSON. */
function wrkScript(spec: LoadSpec, host: string): string {
  const lines: string[] = [];
  const luaHeaders = (r: LoadRequest) => {
    const h = headersOf(r, r.headers?.host ?? host);
    return `{ ${Object.entries(h)
      .map(([k, v]) => `[${luaString(k === 'host' ? 'Host' : k)}] = ${luaString(v)}`)
      .join(', ')} }`;
  };
  if (spec.requests.length === 1) {
    // Static request: wrk formats it once and reuses the bytes (no Lua per request).
    const r = spec.requests[0];
    lines.push(`wrk.method = ${luaString(r.method)}`, `wrk.path = ${luaString(r.path)}`);
    if (r.body !== undefined) lines.push(`wrk.body = ${luaString(r.body)}`);
    for (const [k, v] of Object.entries(headersOf(r, r.headers?.host ?? host))) lines.push(`wrk.headers[${luaString(k === 'host' ? 'Host' : k)}] = ${luaString(v)}`);
  } else {
    lines.push('local reqs = {}', 'local n = 0', 'function init(args)');
    for (const r of spec.requests) {
      lines.push(`  table.insert(reqs, wrk.format(${luaString(r.method)}, ${luaString(r.path)}, ${luaHeaders(r)}, ${r.body !== undefined ? luaString(r.body) : 'nil'}))`);
    }
    lines.push('end', 'function request()', '  n = n % #reqs + 1', '  return reqs[n]', 'end');
  }
  lines.push(
    'function done(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format(\'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%f}\\n\',',
    '    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,',
    '    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))',
    'end',
  );
  return lines.join('\n') + '\n';
}

interface WrkSummary {
  requests: number;
  duration_us: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  max_us: number;
  mean_us: number;
}

function runWrk(bin: string, script: string, spec: LoadSpec, durationMs: number): Promise<WrkSummary> {
  const seconds = Math.max(1, Math.round(durationMs / 1000));
  const url = new URL(spec.requests[0]?.path ?? '/', spec.origin).href;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['-t1', `-c${spec.connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const m = /^WRKJSON (\{.*\})$/m.exec(out);
      if (code !== 0 || !m) return reject(new Error(`wrk exited ${code}: ${err || out}`));
      resolve(JSON.parse(m[1]) as WrkSummary);
    });
  });
}

async function closedWrk(spec: LoadSpec, bin: string): Promise<LoadResult> {
  const dir = mkdtempSync(join(spec.tmpDir ?? tmpdir(), 'wrk-'));
  try {
    const script = join(dir, 'bench.lua');
    writeFileSync(script, wrkScript(spec, new URL(spec.origin).host));
    if (spec.warmupMs) await runWrk(bin, script, spec, spec.warmupMs);
    markMeasure();
    const s = await runWrk(bin, script, spec, spec.durationMs);
    const seconds = s.duration_us / 1e6;
    const ok = s.requests - s.status;
    const transport = s.connect + s.read + s.write + s.timeout;
    const ms = (us: number) => round3(us / 1000);
    return {
      mode: 'closed',
      tool: 'wrk',
      durationMs: Math.round(seconds * 1000),
      requests: s.requests,
      ok,
      errors: s.status + transport,
      firstError: s.status ? `${s.status} non-2xx/3xx answers` : transport ? `socket errors: connect ${s.connect}, read ${s.read}, write ${s.write}, timeout ${s.timeout}` : undefined,
      rps: Math.round(ok / seconds),
      latencyMs: { p50: ms(s.p50_us), p90: ms(s.p90_us), p99: ms(s.p99_us), max: ms(s.max_us), mean: ms(s.mean_us) },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `502: 1, 200: 999`: autocannon's answers by status, so a failure says which. */
function statusSummary(stats: Record<string, { count?: number }> | undefined): string {
  return Object.entries(stats ?? {}).map(([code, s]) => `${code}: ${s.count ?? 0}`).join(', ') || 'statuses not reported';
}

async function closedAutocannon(spec: LoadSpec): Promise<LoadResult> {
  const opts = (durationMs: number): autocannon.Options => ({
    url: spec.origin,
    connections: spec.connections,
    pipelining: 1,
    duration: durationMs / 1000,
    requests: spec.requests.map((r) => ({
      method: r.method,
      path: r.path,
      headers: { ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}), ...r.headers },
      body: r.body,
    })),
  });
  if (spec.warmupMs) await autocannon(opts(spec.warmupMs));
  markMeasure();
  const res = await autocannon(opts(spec.durationMs));
  const seconds = res.duration;
  const total = res.requests.total;
  const ok = res['2xx'];
  return {
    mode: 'closed',
    tool: 'autocannon',
    durationMs: Math.round(seconds * 1000),
    requests: total,
    ok,
    errors: total - ok + res.errors + res.timeouts,
    firstError: res.non2xx ? `${res.non2xx} non-2xx answers (${statusSummary(res.statusCodeStats)})` : res.errors ? `${res.errors} errors` : undefined,
    rps: Math.round(ok / seconds),
  };
}

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
const result = spec.grpc
  ? await (await import('./grpc-load.js')).grpcLoad(spec, spec.grpc, markMeasure)
  : spec.mode === 'closed'
    ? spec.wrk
      ? await closedWrk(spec, spec.wrk)
      : await closedAutocannon(spec)
    : await openLoop(spec);
process.stdout.write(JSON.stringify(result) + '\n');
