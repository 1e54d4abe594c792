/**
 * CloudEvents 1.0 envelopes as daprd builds and reads them (components-contrib pubsub/envelope.go,
 * dapr pkg/runtime/pubsub/cloudevents.go):
 *
 * - publish, body not a CloudEvent: a new envelope {id (uuid), source (the app id), type
 *   com.dapr.event.sent, specversion 1.0, datacontenttype (default text/plain), topic,
 *   pubsubname, traceid/traceparent/tracestate} with `data` = the parsed JSON for a JSON content
 *   type (the raw text when it does not parse), base64 `data_base64` for
 *   application/octet-stream, else the body as a string;
 * - publish, content type application/cloudevents+json: the app's own event is kept, with
 *   topic, pubsubname and the trace fields set and source/type/specversion defaulted;
 * - `cloudevent.*` request metadata overrides id, source, type, subject, traceparent,
 *   tracestate (daprd ≥ 1.12);
 * - ttlInSeconds: when the component does not expire messages itself, an `expiration`
 *   (RFC 3339) is written into the envelope and checked at delivery (hasExpired);
 * - a raw-payload subscription gets its messages wrapped on delivery (fromRawPayload): random
 *   id, datacontenttype application/octet-stream, data_base64.
 */
import { randomUUID } from 'node:crypto';
import { messageTtlSeconds } from '../../pubsub/ttl.js';

export const CLOUDEVENT_CONTENT_TYPE = 'application/cloudevents+json';
export const DEFAULT_EVENT_TYPE = 'com.dapr.event.sent';
const DEFAULT_DATA_CONTENT_TYPE = 'text/plain';

export type CloudEvent = Record<string, unknown>;

/** The media type of a Content-Type value, lowercased, without parameters. */
export function mediaType(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

export function isCloudEventContentType(contentType: string): boolean {
  return mediaType(contentType) === CLOUDEVENT_CONTENT_TYPE;
}

/** application/json, text/json and any `+json` type (components-contrib IsJSONContentType). */
export function isJsonContentType(contentType: string): boolean {
  const t = mediaType(contentType);
  return t === 'application/json' || t === 'text/json' || t.endsWith('+json');
}

export function isBinaryContentType(contentType: string): boolean {
  return mediaType(contentType) === 'application/octet-stream';
}

export interface EnvelopeInput {
  /** The publishing app (the event's source). */
  appId: string;
  pubsubName: string;
  topic: string;
  /** The request's Content-Type ('' when none was sent). */
  contentType: string;
  data: Buffer;
  traceparent?: string;
  tracestate?: string;
}

/** Thrown when a body sent as application/cloudevents+json is not a JSON object. */
export class CloudEventError extends Error {}

/** The envelope published for one message (see the header); request metadata as the API got it. */
export function newCloudEvent(input: EnvelopeInput, metadata: Readonly<Record<string, string>>): CloudEvent {
  const traceparent = metadata['cloudevent.traceparent'] ?? metadata['cloudevent.traceid'] ?? input.traceparent ?? '';
  const tracestate = metadata['cloudevent.tracestate'] ?? input.tracestate ?? '';
  let ce: CloudEvent;
  if (isCloudEventContentType(input.contentType)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(input.data.toString('utf8'));
    } catch (err) {
      throw new CloudEventError(`the body is not JSON: ${(err as Error).message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new CloudEventError('the body is not a JSON object');
    ce = parsed as CloudEvent;
    ce.source ??= input.appId;
    ce.type ??= DEFAULT_EVENT_TYPE;
    ce.specversion ??= '1.0';
  } else {
    const dct = input.contentType || DEFAULT_DATA_CONTENT_TYPE;
    ce = {
      id: randomUUID(),
      specversion: '1.0',
      datacontenttype: dct,
      source: input.appId,
      type: DEFAULT_EVENT_TYPE,
    };
    if (isJsonContentType(dct)) {
      const text = input.data.toString('utf8');
      try {
        ce.data = JSON.parse(text);
      } catch {
        ce.data = text;
      }
    } else if (isBinaryContentType(dct)) {
      ce.data_base64 = input.data.toString('base64');
    } else {
      ce.data = input.data.toString('utf8');
    }
  }
  ce.topic = input.topic;
  ce.pubsubname = input.pubsubName;
  ce.traceid = traceparent;
  ce.traceparent = traceparent;
  ce.tracestate = tracestate;
  if (metadata['cloudevent.id']) ce.id = metadata['cloudevent.id'];
  if (metadata['cloudevent.source']) ce.source = metadata['cloudevent.source'];
  if (metadata['cloudevent.type']) ce.type = metadata['cloudevent.type'];
  if (metadata['cloudevent.subject']) ce.subject = metadata['cloudevent.subject'];
  return ce;
}

/** `ttlInSeconds` of the request metadata (src/pubsub/ttl.ts); throws naming the value when it is not an integer (daprd: ERR_PUBSUB_REQUEST_METADATA). */
export function ttlSeconds(metadata: Readonly<Record<string, string>>): number | undefined {
  return messageTtlSeconds(metadata);
}

/** Writes `expiration` for a component that does not expire messages itself. */
export function applyExpiration(ce: CloudEvent, ttl: number | undefined, now = Date.now()): void {
  if (ttl === undefined) return;
  // RFC 3339 in whole seconds, as Go's time.RFC3339 writes it.
  ce.expiration = new Date(now + ttl * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function hasExpired(ce: CloudEvent, now = Date.now()): boolean {
  const e = ce.expiration;
  if (typeof e !== 'string' || e === '') return false;
  const t = Date.parse(e);
  return Number.isFinite(t) && t < now;
}

/** The CloudEvent a raw-payload subscription delivers for a message's bytes. */
export function fromRawPayload(data: Buffer, topic: string, pubsubName: string): CloudEvent {
  return {
    id: randomUUID(),
    specversion: '1.0',
    datacontenttype: 'application/octet-stream',
    source: 'Dapr',
    type: DEFAULT_EVENT_TYPE,
    topic,
    pubsubname: pubsubName,
    data_base64: data.toString('base64'),
  };
}

/** Go's strconv.ParseBool spellings (contrib metadata.IsRawPayload); throws on anything else. */
export function isRawPayload(metadata: Readonly<Record<string, string>>): boolean {
  const v = metadata.rawPayload;
  if (v === undefined || v === '') return false;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw new Error(`rawPayload=${JSON.stringify(v)} is not a boolean (true or false)`);
}
