/**
 * Prometheus metrics of one sidecar (prom-client, one Registry per sidecar so several sidecars
 * can live in one process): requests by direction and status code, and a latency histogram.
 * Per request: one `close` listener (a shared function, no closure) and two cached children.
 */
import type { ServerResponse } from 'node:http';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Direction = 'inbound' | 'outbound';

const START = Symbol('crossmesh.start');
const METRICS = Symbol('crossmesh.metrics');
const DIRECTION = Symbol('crossmesh.direction');

interface Tracked extends ServerResponse {
  [START]: bigint;
  [METRICS]: SidecarMetrics;
  [DIRECTION]: Direction;
}

function onClose(this: Tracked): void {
  const code = this.headersSent ? String(this.statusCode) : 'aborted';
  this[METRICS].record(this[DIRECTION], code, Number(process.hrtime.bigint() - this[START]) / 1e9);
}

export class SidecarMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'direction' | 'code'>;
  private readonly duration: Histogram<'direction'>;
  private readonly counters = new Map<string, Counter.Internal>();
  private readonly histograms: Record<Direction, Histogram.Internal<'direction'>>;

  constructor(labels: { cluster: string; namespace: string; app_id: string }, opts: { processMetrics?: boolean } = {}) {
    this.registry.setDefaultLabels(labels);
    this.requests = new Counter({ name: 'crossmesh_sidecar_requests_total', help: 'Requests handled by the sidecar, by direction and response status code', labelNames: ['direction', 'code'], registers: [this.registry] });
    this.duration = new Histogram({
      name: 'crossmesh_sidecar_request_duration_seconds',
      help: 'Time from request to the end of the response, by direction',
      labelNames: ['direction'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.histograms = { inbound: this.duration.labels('inbound'), outbound: this.duration.labels('outbound') };
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'crossmesh_sidecar_' });
  }

  /** Starts timing a request; recorded when its response closes. */
  track(res: ServerResponse, direction: Direction): void {
    const t = res as Tracked;
    t[START] = process.hrtime.bigint();
    t[METRICS] = this;
    t[DIRECTION] = direction;
    res.once('close', onClose);
  }

  record(direction: Direction, code: string, seconds: number): void {
    const key = direction + code;
    let c = this.counters.get(key);
    if (!c) {
      c = this.requests.labels(direction, code);
      this.counters.set(key, c);
    }
    c.inc();
    this.histograms[direction].observe(seconds);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
