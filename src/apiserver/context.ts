import type { ResourceStore } from '../store/types.js';
import type { ApiTraffic } from './traffic.js';

/** What a resource request's handlers need from the server. */
export interface HandlerContext {
  store: ResourceStore;
  maxBodyBytes: number;
  bookmarkIntervalMs: number;
  /** Request and watch-event counters (`/metrics`). */
  traffic: ApiTraffic;
}

