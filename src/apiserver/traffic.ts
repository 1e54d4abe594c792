/**
 * What the API serves, counted for `/metrics` (scale measurements: how many requests and watch
 * events the control plane and sidecars cause). Plain numbers bumped per request; the
 * exposition text is built at scrape time.
 */
export class ApiTraffic {
  /** `METHOD` or `WATCH` → requests. */
  private readonly requests = new Map<string, number>();
  /** Watch events written to clients (bookmarks included). */
  watchEvents = 0;

  request(method: string, watch: boolean): void {
    const k = watch ? 'WATCH' : method;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }

  /** Prometheus text exposition of the counters, labelled with the cluster. */
  render(cluster: string): string {
    const c = JSON.stringify(cluster);
    const lines = [
      '# HELP crossmesh_apiserver_requests_total API requests served, by HTTP method (WATCH for watches)',
      '# TYPE crossmesh_apiserver_requests_total counter',
      ...[...this.requests].sort().map(([m, n]) => `crossmesh_apiserver_requests_total{cluster=${c},method="${m}"} ${n}`),
      '# HELP crossmesh_apiserver_watch_events_total Watch events sent to clients',
      '# TYPE crossmesh_apiserver_watch_events_total counter',
      `crossmesh_apiserver_watch_events_total{cluster=${c}} ${this.watchEvents}`,
    ];
    return lines.join('\n') + '\n';
  }
}
