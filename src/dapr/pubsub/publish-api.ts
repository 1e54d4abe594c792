/**
 * The Dapr HTTP publish API (daprd pkg/api/http/http.go onPublish / onBulkPublish):
 *
 *   POST|PUT /v1.0/publish/{pubsub}/{topic...}           body = the event → 204
 *   POST|PUT /v1.0-alpha1/publish/bulk/{pubsub}/{topic...} (and /v1.0/publish/bulk/...)
 *        body = [{entryId, event, contentType, metadata}] → 204, or 500 with
 *        {"failedEntries":[{"entryId","error"}],"errorCode":"ERR_PUBSUB_PUBLISH_MESSAGE"}
 *
 * Request metadata comes from `metadata.<key>=value` query parameters; the topic is the rest
 * of the path (it may contain slashes), as daprd's `{topic:*}` route.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { queryMetadata } from '../state-api.js';
import { daprError } from '../respond.js';
import { bulkFailed, bulkPublish, eventBytes, lookupPubSub, publishEvent, type BulkEntry, type PublishContext } from './publish.js';

/** A JSON object's field as Go's encoding/json finds it: the exact name, else any case of it (the JS SDK sends `entryID`). */
function goField(o: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(o, name)) return o[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(o)) if (k.toLowerCase() === lower) return o[k];
  return undefined;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}

export async function publishHttp(ctx: PublishContext, pubsubName: string, topic: string, query: string, req: IncomingMessage, body: Buffer, res: ServerResponse): Promise<void> {
  await publishEvent(ctx, {
    pubsubName, topic, data: body,
    contentType: header(req, 'content-type') ?? '',
    metadata: queryMetadata(query) ?? {},
    traceparent: header(req, 'traceparent'),
    tracestate: header(req, 'tracestate'),
  });
  res.writeHead(204).end();
}

export async function bulkPublishHttp(ctx: PublishContext, pubsubName: string, topic: string, query: string, req: IncomingMessage, body: Buffer, res: ServerResponse): Promise<void> {
  // daprd validates the pubsub and topic before it reads the body.
  lookupPubSub(ctx, pubsubName, topic);
  const metadata = queryMetadata(query) ?? {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw daprError('ERR_PUBSUB_EVENTS_SER', { topic, pubsub: pubsubName, error: (err as Error).message });
  }
  if (!Array.isArray(parsed)) throw daprError('ERR_PUBSUB_EVENTS_SER', { topic, pubsub: pubsubName, error: 'the body must be a JSON array of {entryId, event, contentType, metadata}' });
  const entries: BulkEntry[] = [];
  for (let i = 0; i < parsed.length; i++) {
    const e = parsed[i] as Record<string, unknown> | null;
    if (e === null || typeof e !== 'object' || Array.isArray(e)) throw daprError('ERR_PUBSUB_EVENTS_SER', { topic, pubsub: pubsubName, error: `entry [${i}] is not an object` });
    const ct = goField(e, 'contentType');
    const contentType = typeof ct === 'string' ? ct : '';
    let event: Buffer;
    try {
      event = eventBytes(goField(e, 'event'), contentType);
    } catch (err) {
      throw daprError('ERR_PUBSUB_CLOUD_EVENTS_SER:envelope', { topic, pubsub: pubsubName, error: `entry [${i}]: ${(err as Error).message}` });
    }
    const rawMd = goField(e, 'metadata');
    const md = rawMd && typeof rawMd === 'object' && !Array.isArray(rawMd)
      ? Object.fromEntries(Object.entries(rawMd as Record<string, unknown>).map(([k, v]) => [k, String(v)]))
      : undefined;
    const id = goField(e, 'entryId');
    entries.push({ entryId: typeof id === 'string' ? id : '', event, contentType, ...(md && Object.keys(md).length > 0 ? { metadata: md } : {}) });
  }
  const { ps, failed } = await bulkPublish(ctx, pubsubName, topic, entries, metadata, { traceparent: header(req, 'traceparent'), tracestate: header(req, 'tracestate') });
  if (failed.length === 0) {
    res.writeHead(204).end();
    return;
  }
  const err = bulkFailed(ps, topic, failed);
  const out = JSON.stringify({ failedEntries: failed, errorCode: err.errorCode });
  res.writeHead(err.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
}
