/**
 * The subscriber's channel to a gRPC app (--app-protocol grpc), as daprd's gRPC postman
 * (pkg/runtime/subscription/postman/grpc) and GetSubscriptionsGRPC:
 *
 *  - subscriptions: AppCallback/ListTopicSubscriptions, converted to the JSON shape of
 *    GET /dapr/subscribe (one parser for both); UNIMPLEMENTED = the app has none.
 *  - an event: AppCallback/OnTopicEvent with the CloudEvent's fields (id, source, type,
 *    spec_version, data_content_type, topic, pubsub_name, path), `data` as bytes (data_base64
 *    decoded, a string as its text, anything else as JSON) and every other attribute in
 *    `extensions`. Answer status SUCCESS / RETRY / DROP; an UNIMPLEMENTED error is not retried
 *    (dropped), any other error is retried.
 *  - bulk subscriptions are delivered event by event (AppCallbackAlpha/OnBulkTopicEventAlpha1 is
 *    not called).
 */
import * as grpc from '@grpc/grpc-js';
import type { AppSubscriberChannel, AppVerdict, BulkDelivery, EventDelivery } from '../pubsub/app-channel.js';
import type { GrpcAppChannel } from './app-channel.js';

const CE_FIELDS = new Set(['id', 'source', 'type', 'specversion', 'datacontenttype', 'data', 'data_base64', 'topic', 'pubsubname']);

interface ProtoValue { nullValue?: number; numberValue?: number; stringValue?: string; boolValue?: boolean; structValue?: { fields: Record<string, ProtoValue> }; listValue?: { values: ProtoValue[] } }

/** A JSON value as google.protobuf.Value (proto-loader's object form). */
function toValue(v: unknown): ProtoValue {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: { fields: Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, toValue(x)])) } };
}

function dataBytes(ev: Record<string, unknown>): Buffer {
  if (typeof ev.data_base64 === 'string') return Buffer.from(ev.data_base64, 'base64');
  const d = ev.data;
  if (d === undefined || d === null) return Buffer.alloc(0);
  if (typeof d === 'string') return Buffer.from(d, 'utf8');
  return Buffer.from(JSON.stringify(d));
}

interface GrpcTopicSubscription {
  pubsubName: string;
  topic: string;
  metadata: Record<string, string>;
  routes?: { rules: { match: string; path: string }[]; default: string } | null;
  deadLetterTopic: string;
  bulkSubscribe?: { enabled: boolean; maxMessagesCount: number; maxAwaitDurationMs: number } | null;
}

export class GrpcAppSubscriberChannel implements AppSubscriberChannel {
  constructor(private readonly app: GrpcAppChannel) {}

  async listSubscriptions(): Promise<unknown> {
    let res: { subscriptions?: GrpcTopicSubscription[] };
    try {
      res = await this.app.unary('ListTopicSubscriptions', {}, 10_000);
    } catch (err) {
      if ((err as grpc.ServiceError).code === grpc.status.UNIMPLEMENTED) return [];
      throw new Error(`AppCallback/ListTopicSubscriptions failed: ${(err as grpc.ServiceError).details ?? (err as Error).message}`);
    }
    return (res.subscriptions ?? []).map((s) => ({
      pubsubname: s.pubsubName,
      topic: s.topic,
      metadata: s.metadata ?? {},
      routes: { rules: s.routes?.rules ?? [], default: s.routes?.default ?? '' },
      ...(s.deadLetterTopic ? { deadLetterTopic: s.deadLetterTopic } : {}),
      ...(s.bulkSubscribe?.enabled ? { bulkSubscribe: { enabled: true, maxMessagesCount: s.bulkSubscribe.maxMessagesCount, maxAwaitDurationMs: s.bulkSubscribe.maxAwaitDurationMs } } : {}),
    }));
  }

  async deliver(d: EventDelivery): Promise<AppVerdict> {
    const ev = d.event;
    const str = (k: string) => (typeof ev[k] === 'string' ? (ev[k] as string) : '');
    const extensions: Record<string, ProtoValue> = {};
    for (const [k, v] of Object.entries(ev)) if (!CE_FIELDS.has(k)) extensions[k] = toValue(v);
    const request = {
      id: str('id'), source: str('source'), type: str('type'), specVersion: str('specversion'), dataContentType: str('datacontenttype'),
      data: dataBytes(ev), topic: d.topic, pubsubName: d.pubsubName, path: d.path, extensions: { fields: extensions },
    };
    let res: { status?: number };
    try {
      res = await this.app.unary('OnTopicEvent', request);
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (e.code === grpc.status.UNIMPLEMENTED) return { outcome: 'drop', reason: `non-retriable error returned from app: ${e.details}` };
      return { outcome: 'retry', reason: `error returned from app while processing pub/sub event: ${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}` };
    }
    switch (res.status ?? 0) {
      case 0: return { outcome: 'success' };
      case 1: return { outcome: 'retry', reason: 'RETRY status returned from app' };
      case 2: return { outcome: 'drop', reason: 'DROP status returned from app' };
      default: return { outcome: 'retry', reason: `unknown status returned from app: ${res.status}` };
    }
  }

  async deliverBulk(d: BulkDelivery): Promise<Map<string, AppVerdict>> {
    const out = new Map<string, AppVerdict>();
    await Promise.all(d.entries.map(async (e) => {
      out.set(e.entryId, await this.deliver({ pubsubName: d.pubsubName, topic: d.topic, path: d.path, event: e.event, body: Buffer.alloc(0), signal: d.signal }));
    }));
    return out;
  }

  close(): void {
    // The GrpcAppChannel is the sidecar's; it closes it.
  }
}
