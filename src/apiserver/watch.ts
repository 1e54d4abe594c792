import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ResourceStore, StoredWatchEvent } from '../store/types.js';
import type { KubeObject } from '../api/types.js';
import type { LabelSelector } from './selectors.js';
import { statusFromError } from '../api/wire.js';
import { CrossmeshError } from '../errors.js';

export interface WatchRequest {
  storageKey: string;
  namespace?: string;
  /** undefined or '0': start with ADDED for every existing object, as Kubernetes does. */
  resourceVersion?: string;
  selector?: LabelSelector;
  /** Name filter (fieldSelector metadata.name=...). */
  name?: string;
  bookmarks: boolean;
  timeoutSeconds?: number;
  /** How often a BOOKMARK is sent when asked for (ms). */
  bookmarkIntervalMs: number;
}

/**
 * Streams newline-delimited watch events for one collection. Events come from the store's
 * synchronous subscription: replay from `resourceVersion` and live events are delivered in
 * one ordered sequence, so nothing is lost between a client's list and its watch. A revision
 * too old for the event log ends the stream with an ERROR event carrying a 410 Status, which
 * tells an informer to list again.
 */
export function serveWatch(store: ResourceStore, req: IncomingMessage, res: ServerResponse, w: WatchRequest): void {
  res.writeHead(200, {
    'content-type': 'application/json',
    'transfer-encoding': 'chunked',
    'cache-control': 'no-cache',
  });
  res.flushHeaders();
  const write = (type: string, object: unknown) => {
    res.write(JSON.stringify({ type, object }) + '\n');
  };
  const matches = (obj: KubeObject) =>
    (w.name === undefined || obj.metadata.name === w.name) && (!w.selector || w.selector(obj));

  let unsubscribe: (() => void) | undefined;
  let bookmarkTimer: NodeJS.Timeout | undefined;
  let timeoutTimer: NodeJS.Timeout | undefined;
  let lastRevision = store.revision();
  const finish = () => {
    unsubscribe?.();
    unsubscribe = undefined;
    if (bookmarkTimer) clearInterval(bookmarkTimer);
    if (timeoutTimer) clearTimeout(timeoutTimer);
  };
  req.on('close', finish);
  res.on('close', finish);

  let fromRevision: number;
  if (w.resourceVersion === undefined || w.resourceVersion === '' || w.resourceVersion === '0') {
    const list = store.list({ storageKey: w.storageKey, namespace: w.namespace });
    for (const obj of list.items) if (matches(obj)) write('ADDED', obj);
    fromRevision = Number(list.resourceVersion);
  } else {
    fromRevision = Number(w.resourceVersion);
    if (!Number.isInteger(fromRevision) || fromRevision < 0) {
      write('ERROR', statusFromError(new CrossmeshError('CM_ERR_BAD_REQUEST', `resourceVersion "${w.resourceVersion}" is not a revision number; watch from the resourceVersion of a list (or 0 for a fresh list)`)));
      res.end();
      return;
    }
  }
  try {
    unsubscribe = store.watch({ storageKey: w.storageKey, namespace: w.namespace, fromRevision }, (ev: StoredWatchEvent) => {
      lastRevision = ev.revision;
      if (matches(ev.object)) write(ev.type, ev.object);
    });
  } catch (err) {
    write('ERROR', statusFromError(err));
    res.end();
    return;
  }
  if (w.bookmarks) {
    bookmarkTimer = setInterval(() => {
      const rv = Math.max(lastRevision, store.revision());
      write('BOOKMARK', { kind: '', apiVersion: '', metadata: { resourceVersion: String(rv) } });
    }, w.bookmarkIntervalMs);
    bookmarkTimer.unref();
  }
  if (w.timeoutSeconds && w.timeoutSeconds > 0) {
    timeoutTimer = setTimeout(() => {
      finish();
      res.end();
    }, w.timeoutSeconds * 1000);
    timeoutTimer.unref();
  }
}
