/**
 * Prometheus request metrics shared by the sidecar and the gateway (prom-client, one Registry
 * per owner so several can live in one process): requests by direction, source and destination
 * cluster and status code, a latency histogram, and counters the owner reports (retries,
 * ejections). Per request: one `close` listener (a shared function, no closure) and cached
 * label children, so the hot path does no label formatting.
 */
import type { ServerResponse } from 'node:http';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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

export class RequestMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'direction' | 'source_cluster' | 'destination_cluster' | 'code'>;
  private readonly duration: Histogram<'direction'>;
  private readonly counters = new Map<string, Counter.Internal>();
  private readonly histograms = new Map<string, Histogram.Internal<'direction'>>();
  private readonly clusters = new Set<string>();

  constructor(prefix: string, labels: Record<string, string>, opts: { processMetrics?: boolean } = {}) {
    this.registry.setDefaultLabels(labels);
    this.requests = new Counter({
      name: `${prefix}_requests_total`,
      help: 'Requests handled, by direction, source and destination cluster, and response status code',
      labelNames: ['direction', 'source_cluster', 'destination_cluster', 'code'],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: `${prefix}_request_duration_seconds`,
      help: 'Time from request to the end of the response, by direction',
      labelNames: ['direction'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: `${prefix}_` });
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
    const key = `${direction}|${src}|${dst}|${code}`;
    let c = this.counters.get(key);
    if (!c) {
      c = this.requests.labels(direction, src, dst, code);
      this.counters.set(key, c);
    }
    c.inc();
    let h = this.histograms.get(direction);
    if (!h) {
      h = this.duration.labels(direction);
      this.histograms.set(direction, h);
    }
    h.observe(seconds);
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
