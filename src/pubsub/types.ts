/**
 * The pub/sub component contract behind the Dapr pub/sub API (src/dapr/pubsub/*). A component
 * is a broker client: it stores published messages durably (or, for pubsub.in-memory, in the
 * process) and delivers each message of a topic to ONE consumer of each consumer group that
 * subscribes to it, at least once. Everything Dapr-shaped (CloudEvents, routes, the app's
 * answer, resiliency, dead-letter topics, metrics) is the runtime's, not the component's.
 *
 * Delivery rules every component keeps (test/support/pubsub-contract.ts checks them):
 *  - publish() resolves only once the message is stored where every subscriber of the topic
 *    will get it (an acknowledged publish is never lost); it rejects CM_ERR_STORE_UNAVAILABLE
 *    when the broker cannot take it, and then nothing was stored.
 *  - Consumers of one group split the topic's messages: each message goes to one of them.
 *    Different groups each get every message published after they first subscribed.
 *  - The handler's answer: 'success' acknowledges (never delivered again), 'drop' acknowledges
 *    too (the runtime counts it dropped), 'retry' or a rejected promise leaves the message
 *    pending: it is delivered again after `redeliverIntervalMs`, to any consumer of the group.
 *  - A message handed to a consumer that stops answering (its process died) is redelivered to
 *    another consumer of the group once it stayed unacknowledged for `processingTimeoutMs`.
 *  - At most `maxConcurrency` messages are in a consumer's handler at once; delivery order is
 *    publish order per topic within one consumer, except for redeliveries.
 *  - close() of a subscription stops delivery; messages in its handler still finish (their
 *    answers still count) unless the process dies.
 */

export interface PublishRequest {
  topic: string;
  /** The bytes to deliver, as the runtime built them (a CloudEvent's JSON, or the raw payload). */
  data: Buffer;
  /** The content type of `data` (application/cloudevents+json for an envelope). */
  contentType: string;
  /** Request metadata the component may read (ttlInSeconds, …); never delivered. */
  metadata: Readonly<Record<string, string>>;
}

export interface PubSubMessage {
  /** The broker's id of the message (a Redis stream id, a row id): unique per topic. */
  id: string;
  topic: string;
  data: Buffer;
  contentType: string;
  /** 1 on first delivery, counting every redelivery (to any consumer) after it. */
  attempt: number;
}

export type DeliveryResult = 'success' | 'retry' | 'drop';

export type MessageHandler = (msg: PubSubMessage) => Promise<DeliveryResult>;

export interface SubscribeOptions {
  topic: string;
  /** Consumer group: subscriptions sharing it split the topic's messages (Dapr: consumerID, default the app id). */
  group: string;
  /** This subscriber's name inside the group, unique per sidecar instance. */
  consumer: string;
  handler: MessageHandler;
  /** Messages in the handler at once (default 16). */
  maxConcurrency?: number;
}

export interface TopicSubscription {
  /** Stops delivery; resolves when no handler of this subscription is running. */
  close(): Promise<void>;
}

export interface PubSubFeatures {
  /** Messages survive the process (and, for a shared broker, are seen by other hosts' sidecars). */
  durable: boolean;
  /** Consumer groups span processes: instances of an app in several clusters share one group. */
  sharedGroups: boolean;
  /** publish() honours metadata.ttlInSeconds (expired messages are never delivered). */
  ttl: boolean;
}

export interface PubSub {
  readonly features: PubSubFeatures;
  /** Connects / opens; throws CrossmeshError CM_ERR_CONFIG (bad metadata) or CM_ERR_STORE_UNAVAILABLE. */
  init(): Promise<void>;
  publish(req: PublishRequest): Promise<void>;
  /** Several messages in order; all stored or the promise rejects (stored ones stay stored). */
  publishBulk?(reqs: PublishRequest[]): Promise<void>;
  subscribe(opts: SubscribeOptions): Promise<TopicSubscription>;
  /** Closes subscriptions and connections. */
  close(): Promise<void>;
}

/** What a pub/sub factory gets from a Dapr Component (secrets already resolved). */
export interface PubSubConfig {
  /** Component name (e.g. pubsub). */
  name: string;
  /** Component metadata as name → value strings. */
  metadata: Record<string, string>;
  /** Directory for embedded brokers' default files ($CROSSMESH_HOME/state). */
  dataDir: string;
}
