/**
 * Prometheus request metrics shared by the sidecar and the gateway (prom-client, one Registry
 * per owner so several can live in one process): requests by direction, source and destination
 * cluster and status code, a latency histogram, and counters the owner reports (retries,
 * ejections). Per request: one `close` listener (a shared function, no closure) and cached
 * label children, so the hot path does no label formatting.
 */
import type { ServerResponse } from 'node:http';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

const START = Symbol('crossmesh.start');
const METRICS = Symbol('crossmesh.metrics');
const DIRECTION = Symbol('crossmesh.direction');
const SOURCE = Symbol('crossmesh.source');
const DESTINATION = Symbol('crossmesh.destination');

interface Tracked extends ServerResponse {
  [START]: bigint;
  [METRICS]: RequestMetrics;
  [DIRECTION]: string;
  [SOURCE]: string;
  [DESTINATION]: string;
}

function onClose(this: Tracked): void {
  const code = this.headersSent ? String(this.statusCode) : 'aborted';
  this[METRICS].record(this[DIRECTION], this[SOURCE], this[DESTINATION], code, Number(process.hrtime.bigint() - this[START]) / 1e9);
}

/** Cluster names come from headers too: cap the label values so a client can't explode them. */
const MAX_CLUSTER_VALUES = 64;

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One (direction, source, destination, code) series: a plain counter bumped per request. */
interface Series { direction: string; source: string; destination: string; code: string; n: number }

/** One direction's latency histogram: bucket counts, sum, count. */
interface Hist { counts: Float64Array; sum: number; count: number }

/**
 * The per-request path bumps plain numbers in nested Maps (no label strings or hashing per
 * request); prom-client reads them at scrape time through two metric objects whose get()
 * returns the current values in its format.
 */
export class RequestMetrics {
  readonly registry = new Registry();
  /** direction → source → destination → code → series. */
  private readonly series = new Map<string, Map<string, Map<string, Map<string, Series>>>>();
  private readonly hists = new Map<string, Hist>();
  private readonly clusters = new Set<string>();

  constructor(prefix: string, labels: Record<string, string>, opts: { processMetrics?: boolean } = {}) {
    this.registry.setDefaultLabels(labels);
    const requestsName = `${prefix}_requests_total`;
    const durationName = `${prefix}_request_duration_seconds`;
    this.registry.registerMetric({
      name: requestsName,
      help: 'Requests handled, by direction, source and destination cluster, and response status code',
      type: 'counter',
      get: () => ({
        name: requestsName,
        help: 'Requests handled, by direction, source and destination cluster, and response status code',
        type: 'counter',
        aggregator: 'sum',
        values: this.seriesValues(),
      }),
    } as never);
    this.registry.registerMetric({
      name: durationName,
      help: 'Time from request to the end of the response, by direction',
      type: 'histogram',
      get: () => ({
        name: durationName,
        help: 'Time from request to the end of the response, by direction',
        type: 'histogram',
        aggregator: 'sum',
        values: this.histValues(durationName),
      }),
    } as never);
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: `${prefix}_` });
  }

  private seriesValues(): { labels: Record<string, string>; value: number }[] {
    const out: { labels: Record<string, string>; value: number }[] = [];
    for (const bySrc of this.series.values()) for (const byDst of bySrc.values()) for (const byCode of byDst.values()) {
      for (const s of byCode.values()) out.push({ labels: { direction: s.direction, source_cluster: s.source, destination_cluster: s.destination, code: s.code }, value: s.n });
    }
    return out;
  }

  private histValues(name: string): { labels: Record<string, string | number>; value: number; metricName: string }[] {
    const out: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const [direction, h] of this.hists) {
      let acc = 0;
      for (let i = 0; i < BUCKETS.length; i++) {
        acc += h.counts[i];
        out.push({ labels: { direction, le: BUCKETS[i] }, value: acc, metricName: `${name}_bucket` });
      }
      out.push({ labels: { direction, le: '+Inf' }, value: h.count, metricName: `${name}_bucket` });
      out.push({ labels: { direction }, value: h.sum, metricName: `${name}_sum` });
      out.push({ labels: { direction }, value: h.count, metricName: `${name}_count` });
    }
    return out;
  }

  /** A counter whose value is read from `read()` at scrape time (retries, ejections kept by the owner). */
  counterFrom(name: string, help: string, read: () => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  /** A counter with one label whose values are read at scrape time (e.g. refusals by reason). */
  labelledCounterFrom(name: string, help: string, label: string, read: () => Readonly<Record<string, number>>): void {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [value, n] of Object.entries(read())) this.inc({ [label]: value }, n);
      },
    });
  }

  /** Starts timing a request; recorded when its response closes. */
  track(res: ServerResponse, direction: string, source: string, destination = ''): void {
    const t = res as Tracked;
    t[START] = process.hrtime.bigint();
    t[METRICS] = this;
    t[DIRECTION] = direction;
    t[SOURCE] = source;
    t[DESTINATION] = destination;
    res.once('close', onClose);
  }

  /** Sets the destination cluster of a tracked request once it is known (after the pick). */
  static setDestination(res: ServerResponse, cluster: string): void {
    (res as Tracked)[DESTINATION] = cluster;
  }

  record(direction: string, source: string, destination: string, code: string, seconds: number): void {
    const src = this.boundCluster(source);
    const dst = this.boundCluster(destination);
    let bySrc = this.series.get(direction);
    if (bySrc === undefined) this.series.set(direction, (bySrc = new Map()));
    let byDst = bySrc.get(src);
    if (byDst === undefined) bySrc.set(src, (byDst = new Map()));
    let byCode = byDst.get(dst);
    if (byCode === undefined) byDst.set(dst, (byCode = new Map()));
    let s = byCode.get(code);
    if (s === undefined) byCode.set(code, (s = { direction, source: src, destination: dst, code, n: 0 }));
    s.n++;
    let h = this.hists.get(direction);
    if (h === undefined) this.hists.set(direction, (h = { counts: new Float64Array(BUCKETS.length), sum: 0, count: 0 }));
    h.count++;
    h.sum += seconds;
    for (let i = 0; i < BUCKETS.length; i++) {
      if (seconds <= BUCKETS[i]) {
        h.counts[i]++;
        break;
      }
    }
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private boundCluster(name: string): string {
    if (name === '' || this.clusters.has(name)) return name;
    if (this.clusters.size >= MAX_CLUSTER_VALUES) return 'other';
    this.clusters.add(name);
    return name;
  }
}

/** Header a sidecar sets on calls to remote gateways, naming its cluster (for the gateway's metrics). */
export const SOURCE_CLUSTER_HEADER = 'x-crossmesh-source-cluster';
