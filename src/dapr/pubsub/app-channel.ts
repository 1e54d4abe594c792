/**
 * How the subscriber reaches the app: its programmatic subscriptions and the delivery of one
 * event (or one bulk batch). Two implementations: HTTP (app-http.ts, daprd's
 * pkg/runtime/subscription/postman/http) and gRPC AppCallback (grpc/app-subscriber.ts).
 *
 * A delivery's answer is the app's verdict as daprd reads it: 'success', 'retry' (with why:
 * the app said RETRY, an unknown status, an error status, a failed call) or 'drop' (DROP, or
 * HTTP 404 / gRPC NOT_FOUND-like "non-retriable" answers).
 */
export type AppVerdict = { outcome: 'success' } | { outcome: 'drop'; reason: string } | { outcome: 'retry'; reason: string };

export interface EventDelivery {
  pubsubName: string;
  topic: string;
  /** The route's path (HTTP) or the matched path given to OnTopicEvent (gRPC). */
  path: string;
  /** The CloudEvent as delivered. */
  event: Record<string, unknown>;
  /** The event's JSON (HTTP body). */
  body: Buffer;
  signal?: AbortSignal;
}

export interface BulkEntryDelivery {
  entryId: string;
  event: Record<string, unknown>;
  contentType: string;
}

export interface BulkDelivery {
  pubsubName: string;
  topic: string;
  path: string;
  entries: BulkEntryDelivery[];
  signal?: AbortSignal;
}

/** The app answered, but not with subscriptions (not JSON, a 4xx): the subscriber does not ask again. */
export class NoSubscriptions extends Error {}

export interface AppSubscriberChannel {
  /** The app's programmatic subscriptions as it answered them (parsed by the caller); [] when it has none. */
  listSubscriptions(): Promise<unknown>;
  deliver(d: EventDelivery): Promise<AppVerdict>;
  /** One verdict per entry id (an entry the app did not answer for is 'retry'). */
  deliverBulk(d: BulkDelivery): Promise<Map<string, AppVerdict>>;
  close(): void;
}
