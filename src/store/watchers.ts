/**
 * Watch fan-out shared by every backend: subscribers filtered by storageKey/namespace, replay
 * from the backend's event log, then live events, each delivered exactly once and in revision
 * order.
 *
 * Two rules make that hold even when handlers write to the store or subscribe from inside a
 * handler:
 *  - publishing never recurses: an event published while another is being delivered is queued
 *    and delivered by the outermost dispatch loop, so every subscriber sees revisions ascending;
 *  - each subscriber has a high-water mark (the newest revision it has, or has chosen not to
 *    have); live events at or below it are skipped. A new subscriber starts at the store's
 *    current revision, because everything up to there is either replayed from the log or, for
 *    a live-only watch, happened before it subscribed.
 */
import { CrossmeshError } from '../errors.js';
import { namespaceFilter } from './keys.js';
import type { StoredWatchEvent, WatchHandler, WatchOptions } from './types.js';

export interface EventFilter {
  storageKey?: string;
  namespace?: string;
}

/** What the hub needs from a backend's event log. */
export interface EventSource {
  /** Current store revision. */
  revision(): number;
  /** Revision of the oldest event still in the log; undefined when the log is empty. */
  oldestRetained(): number | undefined;
  /** Events with revision > after, ascending, matching the filter (backends may filter more cheaply than the hub). */
  eventsSince(after: number, filter: EventFilter): StoredWatchEvent[];
}

export type HandlerErrorReporter = (err: unknown, event: StoredWatchEvent) => void;

interface Subscriber extends EventFilter {
  handler: WatchHandler;
  highWater: number;
  active: boolean;
}

export function eventMatches(filter: EventFilter, event: StoredWatchEvent): boolean {
  if (filter.storageKey !== undefined && filter.storageKey !== event.storageKey) return false;
  if (filter.namespace !== undefined && filter.namespace !== (event.object.metadata.namespace || '')) return false;
  return true;
}

function defaultReporter(err: unknown, event: StoredWatchEvent): void {
  // A broken watcher must not break the write that triggered it, nor other watchers: report and go on.
  console.error(`crossmesh store: watch handler failed on ${event.type} ${event.storageKey} revision ${event.revision}:`, err);
}

export class WatchHub {
  private readonly subscribers = new Set<Subscriber>();
  private readonly queue: StoredWatchEvent[] = [];
  private dispatching = false;

  constructor(
    private readonly source: EventSource,
    private readonly onHandlerError: HandlerErrorReporter = defaultReporter,
  ) {}

  watch(opts: WatchOptions, handler: WatchHandler): () => void {
    const filter: EventFilter = { storageKey: opts.storageKey, namespace: namespaceFilter(opts) };
    const current = this.source.revision();
    let replay: StoredWatchEvent[] = [];
    let highWater = current;
    if (opts.fromRevision !== undefined) {
      const from = opts.fromRevision;
      if (!Number.isSafeInteger(from) || from < 0) {
        throw new CrossmeshError('CM_ERR_BAD_REQUEST', `invalid resourceVersion to watch from: ${String(from)}`);
      }
      const oldest = this.source.oldestRetained() ?? current + 1;
      if (from < oldest - 1 && from < current) {
        throw new CrossmeshError(
          'CM_ERR_GONE',
          `too old resource version: ${from} (the oldest event kept is ${oldest}, current is ${current}); list again and watch from the list's resourceVersion`,
        );
      }
      if (from < current) replay = this.source.eventsSince(from, filter);
      // A watch from a future revision waits for it, as Kubernetes does.
      highWater = Math.max(current, from);
    }
    const sub: Subscriber = { ...filter, handler, highWater, active: true };
    this.subscribers.add(sub);
    if (replay.length > 0) {
      this.exclusive(() => {
        for (const event of replay) {
          if (!sub.active) break;
          if (eventMatches(sub, event)) this.deliver(sub, event);
        }
      });
    }
    return () => {
      sub.active = false;
      this.subscribers.delete(sub);
    };
  }

  /** Called by the backend after a write is durable. */
  publish(event: StoredWatchEvent): void {
    this.queue.push(event);
    if (this.dispatching) return;
    this.exclusive(() => {});
  }

  close(): void {
    for (const sub of this.subscribers) sub.active = false;
    this.subscribers.clear();
    this.queue.length = 0;
  }

  /** Runs fn as the outermost dispatcher (or inline when already inside one), then drains the queue. */
  private exclusive(fn: () => void): void {
    if (this.dispatching) {
      fn();
      return;
    }
    this.dispatching = true;
    try {
      fn();
      for (let i = 0; i < this.queue.length; i++) {
        const event = this.queue[i];
        for (const sub of this.subscribers) {
          if (!sub.active || event.revision <= sub.highWater) continue;
          sub.highWater = event.revision;
          if (eventMatches(sub, event)) this.deliver(sub, event);
        }
      }
    } finally {
      this.queue.length = 0;
      this.dispatching = false;
    }
  }

  private deliver(sub: Subscriber, event: StoredWatchEvent): void {
    // Each handler gets its own copy: one watcher mutating its object must not change what others see.
    const copy: StoredWatchEvent = { type: event.type, object: structuredClone(event.object), revision: event.revision, storageKey: event.storageKey };
    try {
      sub.handler(copy);
    } catch (err) {
      try {
        this.onHandlerError(err, copy);
      } catch {
        // The reporter failing is no reason to lose events either.
      }
    }
  }
}
