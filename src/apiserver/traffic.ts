import { CONTROL_PLANE_USER_AGENT } from '../api/user-agents.js';

/**
 * What the API serves, counted for `/metrics` (scale measurements: how many requests and watch
 * events the control plane and sidecars cause). Plain numbers bumped per request; the
 * exposition text is built at scrape time.
 */
export class ApiTraffic {
  /** `client method` (method WATCH for watches) → requests. */
  private readonly requests = new Map<string, number>();
  /** Watch events written to clients (bookmarks included), by client. */
  private readonly events = new Map<string, number>();

  /** `client`: `control-plane` (its User-Agent) or `other`. */
  static clientOf(userAgent: string | undefined): string {
    return userAgent !== undefined && userAgent.startsWith(CONTROL_PLANE_USER_AGENT) ? 'control-plane' : 'other';
  }

  request(client: string, method: string, watch: boolean): void {
    const k = `${client} ${watch ? 'WATCH' : method}`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }

  watchEvent(client: string): void {
    this.events.set(client, (this.events.get(client) ?? 0) + 1);
  }

  /** Prometheus text exposition of the counters, labelled with the cluster. */
  render(cluster: string): string {
    const c = JSON.stringify(cluster);
    const lines = [
      '# HELP crossmesh_apiserver_requests_total API requests served, by client (control-plane: the multicluster control plane) and HTTP method (WATCH for watches)',
      '# TYPE crossmesh_apiserver_requests_total counter',
      ...[...this.requests].sort().map(([k, n]) => {
        const [client, method] = k.split(' ');
        return `crossmesh_apiserver_requests_total{cluster=${c},client="${client}",method="${method}"} ${n}`;
      }),
      '# HELP crossmesh_apiserver_watch_events_total Watch events sent to clients, by client (control-plane: the multicluster control plane)',
      '# TYPE crossmesh_apiserver_watch_events_total counter',
      ...[...this.events].sort().map(([client, n]) => `crossmesh_apiserver_watch_events_total{cluster=${c},client="${client}"} ${n}`),
    ];
    return lines.join('\n') + '\n';
  }
}
