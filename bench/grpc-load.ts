/**
 * The benchmark's load for the gRPC rows, with grpc-js. Two kinds:
 * - `state` (the Dapr gRPC API rows): SaveState and GetState calls alternating (each one request,
 *   like the HTTP state row's POST and GET) against a sidecar's DAPR_GRPC_PORT, with the service
 *   definition the sidecar serves (src/dapr/grpc/server.ts, which loads @dapr/dapr's .proto files);
 * - `orders` (the gRPC mesh rows): NewOrder calls to examples/grpc-orders through
 *   test/support/grpc-orders.ts, to the app itself (h2c) or to a client sidecar's outbound port
 *   (h2c with prior knowledge, `grpc.default_authority` = the mesh name).
 * One channel per "connection". Closed loop: every channel keeps one
 * call in flight. Rate: calls scheduled evenly at `rate` per second, round robin over the
 * channels, timed from the call to its answer. Unlike the HTTP rows' wrk this generator is Node
 * and takes CPU from the processes it measures on 2 cores: compare its rows with each other.
 */
import * as grpc from '@grpc/grpc-js';
import { daprServiceDefinition } from '../src/dapr/grpc/server.js';
import type { LoadResult, LoadSpec, Percentiles } from './load.js';

export interface GrpcStateLoad {
  kind?: 'state';
  /** 127.0.0.1:port of DAPR_GRPC_PORT. */
  target: string;
  store: string;
  key: string;
  /** The value saved (bytes of its UTF-8). */
  value: string;
}

export interface GrpcOrdersLoad {
  kind: 'orders';
  /** 127.0.0.1:port of the orders app, or of a client sidecar's outbound listener. */
  target: string;
  /** `:authority` of every call (the mesh name, `orders.bench:50051`) when dialing a sidecar. */
  authority?: string;
  /** Order.item of every call (sets the request's size). */
  item: string;
}

export type GrpcLoad = GrpcStateLoad | GrpcOrdersLoad;

/** Deadline of each orders call: a path that stops answering shows as errors, not a stuck run. */
const ORDERS_DEADLINE_MS = 10_000;

type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: unknown) => void) => void;

function stats(values: number[]): Percentiles {
  const s = Float64Array.from(values).sort();
  const at = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] : NaN);
  const r = (x: number) => Math.round(x * 1000) / 1000;
  let sum = 0;
  for (const v of s) sum += v;
  return { p50: r(at(50)), p90: r(at(90)), p99: r(at(99)), max: r(at(100)), mean: r(sum / Math.max(1, s.length)) };
}

/** The calls of one kind over `connections` channels: `call(i)` on channel i resolves with its error text (undefined = OK). */
interface Caller {
  call(i: number): Promise<string | undefined>;
  close(): void;
}

function stateCaller(g: GrpcStateLoad, connections: number): Caller {
  const Client = grpc.makeGenericClientConstructor(daprServiceDefinition(), 'Dapr');
  const clients = Array.from({ length: connections }, () => new Client(g.target, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  const save: Unary[] = clients.map((c) => (c as unknown as Record<string, Unary>).SaveState.bind(c));
  const get: Unary[] = clients.map((c) => (c as unknown as Record<string, Unary>).GetState.bind(c));
  const saveReq = { storeName: g.store, states: [{ key: g.key, value: Buffer.from(g.value) }] };
  const getReq = { storeName: g.store, key: g.key };
  const md = new grpc.Metadata();
  let n = 0;
  return {
    call: (i) =>
      new Promise((resolve) => {
        const isSave = (n++ & 1) === 0;
        (isSave ? save[i] : get[i])(isSave ? saveReq : getReq, md, {}, (err) => resolve(err ? `${grpc.status[err.code]}: ${err.details}` : undefined));
      }),
    close: () => clients.forEach((c) => c.close()),
  };
}

async function ordersCaller(g: GrpcOrdersLoad, connections: number): Promise<Caller> {
  const { ordersClient } = await import('../test/support/grpc-orders.js');
  // A local subchannel pool per client: each is its own HTTP/2 connection, as the state rows' are.
  const clients = Array.from({ length: connections }, () => ordersClient(g.target, { ...(g.authority ? { authority: g.authority } : {}), channelOptions: { 'grpc.use_local_subchannel_pool': 1 } }));
  let n = 0;
  return {
    call: (i) =>
      clients[i].newOrder({ id: `b${n++}`, item: g.item, quantity: 1 }, { deadlineMs: ORDERS_DEADLINE_MS }).then(
        () => undefined,
        (err: grpc.ServiceError) => `${grpc.status[err.code] ?? err.code}: ${err.details ?? err.message}`,
      ),
    close: () => clients.forEach((c) => c.close()),
  };
}

export async function grpcLoad(spec: LoadSpec, g: GrpcLoad, markMeasure: () => void): Promise<LoadResult> {
  const caller = g.kind === 'orders' ? await ordersCaller(g, spec.connections) : stateCaller(g, spec.connections);
  const clients = Array.from({ length: spec.connections }, (_, i) => i);
  const call = caller.call;
  // Every channel connected before anything is timed.
  await Promise.all(clients.map((_, i) => call(i)));

  let measuring = false;
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  const lat: number[] = [];
  const fromSchedule: number[] = [];
  const lag: number[] = [];
  const record = (started: number, err: string | undefined, scheduled?: number) => {
    if (!measuring) return;
    if (err) {
      errors++;
      firstError ??= err;
    } else ok++;
    const now = performance.now();
    lat.push(now - started);
    if (scheduled !== undefined) {
      fromSchedule.push(now - scheduled);
      lag.push(Math.max(0, started - scheduled));
    }
  };

  let t0 = 0;
  let t1 = 0;
  if (spec.mode === 'closed') {
    let stopAt = performance.now() + (spec.warmupMs ?? 0);
    const loop = async (i: number) => {
      while (performance.now() < stopAt) {
        const s = performance.now();
        record(s, await call(i));
      }
    };
    await Promise.all(clients.map((_, i) => loop(i)));
    markMeasure();
    measuring = true;
    t0 = performance.now();
    stopAt = t0 + spec.durationMs;
    await Promise.all(clients.map((_, i) => loop(i)));
    t1 = performance.now();
  } else {
    const rate = spec.rate ?? 1000;
    const warm = Math.floor((rate * (spec.warmupMs ?? 0)) / 1000);
    const total = warm + Math.floor((rate * spec.durationMs) / 1000);
    const C = spec.connections;
    const burst = spec.mode === 'burst';
    const at = (k: number) => (burst ? (Math.floor(k / C) * C * 1000) / rate : (k * 1000) / rate);
    const start = performance.now();
    const inflight: Promise<void>[] = [];
    for (let k = 0; k < total; k++) {
      if (k === warm) {
        markMeasure();
        measuring = true;
        t0 = performance.now();
      }
      const scheduled = start + at(k);
      const wait = scheduled - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const s = performance.now();
      const m = measuring;
      inflight.push(call(k % C).then((e) => void (m && record(s, e, scheduled))));
    }
    await Promise.all(inflight);
    t1 = performance.now();
  }
  caller.close();
  const seconds = (t1 - t0) / 1000;
  return {
    mode: spec.mode,
    ...(spec.mode === 'closed' ? { tool: 'grpc-js' as const } : {}),
    durationMs: Math.round(t1 - t0),
    requests: ok + errors,
    ok,
    errors,
    ...(firstError ? { firstError } : {}),
    rps: Math.round(ok / seconds),
    latencyMs: stats(lat),
    ...(spec.mode !== 'closed'
      ? (() => {
          const l = stats(lag);
          // gRPC multiplexes calls on a channel: none waits for the one before it.
          return { fromScheduleMs: stats(fromSchedule), sendLagMs: { p50: l.p50, p99: l.p99, max: l.max }, queued: 0 };
        })()
      : {}),
  };
}
