/**
 * Publishing, shared by the HTTP API (publish-api.ts) and the gRPC API (PublishEvent,
 * BulkPublishEventAlpha1): validation in daprd's order (no pubsub at all → NOT_CONFIGURED,
 * empty name → EMPTY, unknown → NOT_FOUND, empty topic → TOPIC_EMPTY), the request metadata
 * (rawPayload, ttlInSeconds, cloudevent.*), the CloudEvent envelope (cloudevents.ts), topic
 * scopes, the component's outbound Resiliency policy, and the answer's catalogue error. A
 * publish resolves only once the broker stored the message.
 */
import { toCrossmeshError } from '../../errors.js';
import type { PublishRequest } from '../../pubsub/types.js';
import type { LoadedPubSub } from '../components.js';
import { DaprError, daprError } from '../respond.js';
import {
  CLOUDEVENT_CONTENT_TYPE, CloudEventError, applyExpiration, isBinaryContentType, isCloudEventContentType, isJsonContentType,
  isRawPayload, newCloudEvent, ttlSeconds,
} from './cloudevents.js';
import type { PubSubMetrics } from './metrics.js';

/** What the Dapr APIs need of the component registry for pub/sub. */
export interface PubSubs {
  getPubSub(name: string): LoadedPubSub | undefined;
  hasPubSubs(): boolean;
}

export interface PublishContext {
  appId: string;
  pubsubs: PubSubs;
  metrics?: PubSubMetrics;
}

export interface PublishInput {
  pubsubName: string;
  topic: string;
  data: Buffer;
  /** The request's Content-Type ('' when none). */
  contentType: string;
  /** Request metadata (`metadata.*` query parameters / the gRPC metadata map). */
  metadata: Record<string, string>;
  traceparent?: string;
  tracestate?: string;
}

/** The pubsub a request names, or the catalogue error daprd answers (validateAndGetPubsubAndTopic). */
export function lookupPubSub(ctx: PublishContext, pubsubName: string, topic: string): LoadedPubSub {
  if (!ctx.pubsubs.hasPubSubs()) throw daprError('ERR_PUBSUB_NOT_CONFIGURED');
  if (pubsubName === '') throw daprError('ERR_PUBSUB_EMPTY');
  const ps = ctx.pubsubs.getPubSub(pubsubName);
  if (!ps) throw daprError('ERR_PUBSUB_NOT_FOUND', { pubsub: pubsubName });
  if (topic === '') throw daprError('ERR_TOPIC_EMPTY', { pubsub: pubsubName });
  return ps;
}

function metadataError(err: unknown): DaprError {
  return daprError('ERR_PUBSUB_REQUEST_METADATA', { error: (err as Error).message });
}

function forbidden(ctx: PublishContext, ps: LoadedPubSub, topic: string): void {
  if (!ps.scopes.canPublish(topic)) throw daprError('ERR_PUBSUB_FORBIDDEN', { topic, appId: ctx.appId });
}

/** The bytes a message is stored as: the CloudEvent's JSON, or the body as is with rawPayload. */
function messageFor(ctx: PublishContext, ps: LoadedPubSub, input: PublishInput, raw: boolean, ttl: number | undefined): PublishRequest {
  if (raw) return { topic: input.topic, data: input.data, contentType: input.contentType || 'application/octet-stream', metadata: input.metadata };
  let ce;
  try {
    ce = newCloudEvent({ appId: ctx.appId, pubsubName: input.pubsubName, topic: input.topic, contentType: input.contentType, data: input.data, traceparent: input.traceparent, tracestate: input.tracestate }, input.metadata);
  } catch (err) {
    if (err instanceof CloudEventError) throw daprError('ERR_PUBSUB_CLOUD_EVENTS_SER', { error: err.message });
    throw err;
  }
  // Dapr expires messages itself only when the component does not (pubsub.ApplyMetadata).
  if (!ps.store.features.ttl) applyExpiration(ce, ttl);
  return { topic: input.topic, data: Buffer.from(JSON.stringify(ce)), contentType: CLOUDEVENT_CONTENT_TYPE, metadata: input.metadata };
}

/** Stores one message through the component's outbound Resiliency policy, if it has one. */
function store(ps: LoadedPubSub, msg: PublishRequest): Promise<void> {
  const policy = ps.policy;
  return policy ? policy.run(() => ps.store.publish(msg)) : ps.store.publish(msg);
}

function publishFailed(ps: LoadedPubSub, topic: string, err: unknown): DaprError {
  return daprError('ERR_PUBSUB_PUBLISH_MESSAGE', { topic, pubsub: ps.name, error: toCrossmeshError(err).message }, { cause: err });
}

export async function publishEvent(ctx: PublishContext, input: PublishInput): Promise<void> {
  const ps = lookupPubSub(ctx, input.pubsubName, input.topic);
  let raw: boolean;
  let ttl: number | undefined;
  try {
    raw = isRawPayload(input.metadata);
    ttl = ttlSeconds(input.metadata);
  } catch (err) {
    throw metadataError(err);
  }
  forbidden(ctx, ps, input.topic);
  const msg = messageFor(ctx, ps, input, raw, ttl);
  try {
    await store(ps, msg);
  } catch (err) {
    ctx.metrics?.publishFailed(ps.name, input.topic);
    throw publishFailed(ps, input.topic, err);
  }
  ctx.metrics?.published(ps.name, input.topic, 1);
}

export interface BulkEntry {
  entryId: string;
  /** The event as bytes (the caller converted it for its content type). */
  event: Buffer;
  contentType: string;
  /** Entry metadata; request-level metadata is merged under it. */
  metadata?: Record<string, string>;
}

export interface BulkFailure {
  entryId: string;
  error: string;
}

/**
 * Bulk publish (daprd onBulkPublish): entry ids must be present and unique (ERR_PUBSUB_EVENTS_SER),
 * each entry gets its own envelope; the entries are published in order, one by one, so the
 * answer names exactly the ones that were not stored. Resolves with the failures (empty = all
 * stored); the caller answers ERR_PUBSUB_PUBLISH_MESSAGE with them when there are any.
 */
export async function bulkPublish(ctx: PublishContext, pubsubName: string, topic: string, entries: BulkEntry[], metadata: Record<string, string>, trace?: { traceparent?: string; tracestate?: string }): Promise<{ ps: LoadedPubSub; failed: BulkFailure[] }> {
  const ps = lookupPubSub(ctx, pubsubName, topic);
  let raw: boolean;
  try {
    raw = isRawPayload(metadata);
  } catch (err) {
    throw metadataError(err);
  }
  const seen = new Set<string>();
  for (const e of entries) {
    if (e.entryId === '' || seen.has(e.entryId)) throw daprError('ERR_PUBSUB_EVENTS_SER:entry', { topic, pubsub: pubsubName, error: 'entryId is duplicated or not present for entry' });
    seen.add(e.entryId);
  }
  forbidden(ctx, ps, topic);
  const msgs: { entryId: string; msg: PublishRequest }[] = [];
  for (const e of entries) {
    const md = e.metadata ? { ...metadata, ...e.metadata } : metadata;
    let ttl: number | undefined;
    try {
      ttl = ttlSeconds(md);
    } catch (err) {
      throw metadataError(err);
    }
    msgs.push({ entryId: e.entryId, msg: messageFor(ctx, ps, { pubsubName, topic, data: e.event, contentType: e.contentType, metadata: md, ...trace }, raw, ttl) });
  }
  const failed: BulkFailure[] = [];
  let stored = 0;
  for (const { entryId, msg } of msgs) {
    try {
      await store(ps, msg);
      stored++;
    } catch (err) {
      failed.push({ entryId, error: toCrossmeshError(err).message });
    }
  }
  if (stored > 0) ctx.metrics?.published(ps.name, topic, stored);
  if (failed.length > 0) ctx.metrics?.publishFailed(ps.name, topic, failed.length);
  return { ps, failed };
}

/** The error of a bulk publish with failed entries (its message names the first failure). */
export function bulkFailed(ps: LoadedPubSub, topic: string, failed: BulkFailure[]): DaprError {
  return daprError('ERR_PUBSUB_PUBLISH_MESSAGE', { topic, pubsub: ps.name, error: `${failed.length} of the entries were not published (first: ${failed[0].entryId}: ${failed[0].error})` });
}

/**
 * A bulk entry's `event` (any JSON value) as bytes for its content type (daprd ConvertEventToBytes):
 * JSON and CloudEvent types → the value's JSON; octet-stream → a base64 string decoded; any
 * other type → a string's text. Throws a message when the value does not fit the type.
 */
export function eventBytes(event: unknown, contentType: string): Buffer {
  if (isJsonContentType(contentType) || isCloudEventContentType(contentType)) return Buffer.from(JSON.stringify(event ?? null));
  if (typeof event !== 'string') throw new Error(`the event of content type ${JSON.stringify(contentType)} must be a string`);
  if (isBinaryContentType(contentType)) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(event)) throw new Error('the event of content type application/octet-stream must be base64');
    return Buffer.from(event, 'base64');
  }
  return Buffer.from(event, 'utf8');
}
