import type { ResourceStore } from '../store/types.js';

/** What a resource request's handlers need from the server. */
export interface HandlerContext {
  store: ResourceStore;
  maxBodyBytes: number;
  bookmarkIntervalMs: number;
}

