/**
 * The HTTP app channel of the subscriber (daprd pkg/runtime/subscription/postman/http and
 * pkg/runtime/pubsub GetSubscriptionsHTTP):
 *
 *  - GET /dapr/subscribe: 200 → the JSON body; 404 → no subscriptions; anything else an error
 *    (the subscriber retries).
 *  - an event: POST {path} with the CloudEvent's JSON, content-type application/cloudevents+json,
 *    traceparent/tracestate from the event, APP_API_TOKEN as dapr-api-token. The answer:
 *    2xx with {"status": ""|"SUCCESS"} or a body that is not JSON → success, "RETRY" → retry,
 *    "DROP" → drop, another status → retry; 404 → drop ("non-retriable"); any other status or
 *    a failed call → retry.
 *  - a bulk batch: POST {path} with the bulk envelope (type com.dapr.event.sent.bulk, entries
 *    [{entryId, event, contentType, metadata}]) as application/json; 2xx → per entry the
 *    status of {"statuses":[{entryId, status}]} ("" or missing → retry, as daprd); 404 → all
 *    dropped; else all retried.
 *
 * One keep-alive agent per app: deliveries reuse connections.
 */
import { Agent, request } from 'node:http';
import { randomUUID } from 'node:crypto';
import { NoSubscriptions, type AppSubscriberChannel, type AppVerdict, type BulkDelivery, type EventDelivery } from './app-channel.js';
import { CLOUDEVENT_CONTENT_TYPE } from './cloudevents.js';

/** Bodies of app answers read for their status (an app answering megabytes is cut here). */
const MAX_ANSWER_BYTES = 1 << 20;

interface Answer { status: number; body: Buffer }

export class HttpAppSubscriberChannel implements AppSubscriberChannel {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly opts: { appToken?: string; timeoutMs?: number } = {},
  ) {}

  private call(method: string, path: string, headers: Record<string, string>, body: Buffer | undefined, signal?: AbortSignal): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const h: Record<string, string> = { ...headers };
      if (this.opts.appToken) h['dapr-api-token'] = this.opts.appToken;
      if (body) h['content-length'] = String(body.length);
      const req = request({ host: this.host, port: this.port, method, path: path.startsWith('/') ? path : `/${path}`, headers: h, agent: this.agent, signal, timeout: this.opts.timeoutMs ?? 60_000 }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= MAX_ANSWER_BYTES) chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.opts.timeoutMs ?? 60_000} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  async listSubscriptions(): Promise<unknown> {
    const a = await this.call('GET', '/dapr/subscribe', { accept: 'application/json' }, undefined);
    if (a.status === 404) return [];
    if (a.status >= 400 && a.status < 500) throw new NoSubscriptions(`the app answered ${a.status} to GET /dapr/subscribe; taking it as no programmatic subscriptions`);
    if (a.status !== 200) throw new Error(`the app answered ${a.status} to GET /dapr/subscribe: ${a.body.toString('utf8').slice(0, 200)}`);
    const text = a.body.toString('utf8').trim();
    if (text === '') return [];
    try {
      return JSON.parse(text);
    } catch (err) {
      // An app that answers every path (a catch-all handler) has no subscriptions: said once, not retried.
      throw new NoSubscriptions(`the app's GET /dapr/subscribe answer is not JSON (${(err as Error).message}); taking it as no programmatic subscriptions`);
    }
  }

  async deliver(d: EventDelivery): Promise<AppVerdict> {
    const headers: Record<string, string> = { 'content-type': CLOUDEVENT_CONTENT_TYPE, pubsubname: d.pubsubName };
    if (typeof d.event.traceparent === 'string' && d.event.traceparent) headers.traceparent = d.event.traceparent;
    if (typeof d.event.tracestate === 'string' && d.event.tracestate) headers.tracestate = d.event.tracestate;
    let a: Answer;
    try {
      a = await this.call('POST', d.path, headers, d.body, d.signal);
    } catch (err) {
      return { outcome: 'retry', reason: `error sending the event to the app: ${(err as Error).message}` };
    }
    if (a.status >= 200 && a.status <= 299) return verdictOf(a.body);
    if (a.status === 404) return { outcome: 'drop', reason: `non-retriable error returned from app: status 404: ${a.body.toString('utf8').slice(0, 200)}` };
    return { outcome: 'retry', reason: `retriable error returned from app: status ${a.status}: ${a.body.toString('utf8').slice(0, 200)}` };
  }

  async deliverBulk(d: BulkDelivery): Promise<Map<string, AppVerdict>> {
    const envelope = {
      id: randomUUID(),
      entries: d.entries.map((e) => ({ entryId: e.entryId, event: e.event, contentType: e.contentType, metadata: { pubsubName: d.pubsubName } })),
      metadata: { pubsubName: d.pubsubName },
      pubsubname: d.pubsubName,
      topic: d.topic,
      type: 'com.dapr.event.sent.bulk',
    };
    const out = new Map<string, AppVerdict>();
    const all = (v: AppVerdict) => {
      for (const e of d.entries) out.set(e.entryId, v);
      return out;
    };
    let a: Answer;
    try {
      a = await this.call('POST', d.path, { 'content-type': 'application/json', pubsubname: d.pubsubName }, Buffer.from(JSON.stringify(envelope)), d.signal);
    } catch (err) {
      return all({ outcome: 'retry', reason: `error sending the bulk event to the app: ${(err as Error).message}` });
    }
    if (a.status === 404) return all({ outcome: 'drop', reason: 'non-retriable error returned from app: status 404' });
    if (a.status < 200 || a.status > 299) return all({ outcome: 'retry', reason: `retriable error returned from app: status ${a.status}` });
    let parsed: { statuses?: { entryId?: string; status?: string }[] };
    try {
      parsed = JSON.parse(a.body.toString('utf8'));
    } catch (err) {
      return all({ outcome: 'retry', reason: `failed unmarshalling app response for bulk subscribe: ${(err as Error).message}` });
    }
    const known = new Set(d.entries.map((e) => e.entryId));
    for (const s of parsed?.statuses ?? []) {
      if (!s || typeof s.entryId !== 'string' || !known.has(s.entryId)) continue;
      out.set(s.entryId, statusVerdict(s.status ?? '', true));
    }
    for (const e of d.entries) if (!out.has(e.entryId)) out.set(e.entryId, { outcome: 'retry', reason: 'response not received, RETRY required' });
    return out;
  }

  close(): void {
    this.agent.destroy();
  }
}

/** A 2xx answer's verdict: its JSON `status`, success when the body is empty or not JSON. */
export function verdictOf(body: Buffer): AppVerdict {
  const text = body.toString('utf8').trim();
  if (text === '') return { outcome: 'success' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { outcome: 'success' };
  }
  const status = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as { status?: unknown }).status : undefined;
  return statusVerdict(typeof status === 'string' ? status : '', false);
}

/** SUCCESS / RETRY / DROP, exactly as spelled (daprd compares the string); '' is success for one event, retry for a bulk entry (daprd). */
export function statusVerdict(status: string, bulk: boolean): AppVerdict {
  switch (status) {
    case '':
      return bulk ? { outcome: 'retry', reason: 'no status for the entry, RETRY required' } : { outcome: 'success' };
    case 'SUCCESS':
      return { outcome: 'success' };
    case 'RETRY':
      return { outcome: 'retry', reason: 'RETRY status returned from app' };
    case 'DROP':
      return { outcome: 'drop', reason: 'DROP status returned from app' };
    default:
      return { outcome: 'retry', reason: `unknown status returned from app: ${JSON.stringify(status)}` };
  }
}
