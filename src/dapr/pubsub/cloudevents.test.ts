import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyExpiration, CloudEventError, fromRawPayload, hasExpired, isRawPayload, newCloudEvent, ttlSeconds } from './cloudevents.js';
import { compileTopicScopes } from './scopes.js';
import { statusVerdict, verdictOf } from './app-http.js';
import { eventBytes } from './publish.js';

const base = { appId: 'checkout', pubsubName: 'pubsub', topic: 'orders' };

test('envelope: JSON data parsed, text kept as text, octet-stream as data_base64, Dapr defaults', () => {
  const json = newCloudEvent({ ...base, contentType: 'application/json', data: Buffer.from('{"orderId":7}'), traceparent: '00-aa-bb-01' }, {});
  assert.deepEqual(json.data, { orderId: 7 });
  assert.equal(json.datacontenttype, 'application/json');
  assert.equal(json.source, 'checkout');
  assert.equal(json.type, 'com.dapr.event.sent');
  assert.equal(json.specversion, '1.0');
  assert.equal(json.topic, 'orders');
  assert.equal(json.pubsubname, 'pubsub');
  assert.equal(json.traceparent, '00-aa-bb-01');
  assert.equal(json.traceid, '00-aa-bb-01');
  assert.match(String(json.id), /^[0-9a-f-]{36}$/);
  // Not JSON although the content type says so: kept as the text (components-contrib).
  assert.equal(newCloudEvent({ ...base, contentType: 'application/json', data: Buffer.from('not json') }, {}).data, 'not json');
  const text = newCloudEvent({ ...base, contentType: '', data: Buffer.from('hello') }, {});
  assert.equal(text.data, 'hello');
  assert.equal(text.datacontenttype, 'text/plain');
  const bin = newCloudEvent({ ...base, contentType: 'application/octet-stream', data: Buffer.from([0, 255, 1]) }, {});
  assert.equal(bin.data_base64, 'AP8B');
  assert.equal(bin.data, undefined);
});

test('envelope: a CloudEvent body is passed through with topic/pubsub/trace set; cloudevent.* metadata overrides', () => {
  const ce = newCloudEvent({ ...base, contentType: 'application/cloudevents+json; charset=utf-8', data: Buffer.from(JSON.stringify({ id: 'mine', type: 'order.created', source: 'shop', specversion: '1.0', data: { a: 1 }, custom: 'x' })) }, {});
  assert.equal(ce.id, 'mine');
  assert.equal(ce.type, 'order.created');
  assert.equal(ce.source, 'shop');
  assert.equal(ce.custom, 'x');
  assert.equal(ce.topic, 'orders');
  const defaulted = newCloudEvent({ ...base, contentType: 'application/cloudevents+json', data: Buffer.from('{"id":"x"}') }, {});
  assert.equal(defaulted.type, 'com.dapr.event.sent');
  assert.equal(defaulted.source, 'checkout');
  assert.throws(() => newCloudEvent({ ...base, contentType: 'application/cloudevents+json', data: Buffer.from('[1]') }, {}), CloudEventError);
  assert.throws(() => newCloudEvent({ ...base, contentType: 'application/cloudevents+json', data: Buffer.from('{') }, {}), /not JSON/);
  const over = newCloudEvent({ ...base, contentType: 'text/plain', data: Buffer.from('x') }, { 'cloudevent.id': 'fixed', 'cloudevent.type': 't2', 'cloudevent.source': 's2', 'cloudevent.subject': 'sub' });
  assert.deepEqual([over.id, over.type, over.source, over.subject], ['fixed', 't2', 's2', 'sub']);
});

test('ttl: ttlInSeconds parsed strictly, expiration written in RFC 3339 and checked', () => {
  assert.equal(ttlSeconds({}), undefined);
  assert.equal(ttlSeconds({ ttlInSeconds: '5' }), 5);
  assert.equal(ttlSeconds({ ttlInSeconds: '-1' }), undefined);
  assert.throws(() => ttlSeconds({ ttlInSeconds: '5s' }), /ttlInSeconds="5s" is not an integer/);
  const ce: Record<string, unknown> = {};
  applyExpiration(ce, 10, Date.parse('2026-01-01T00:00:00.500Z'));
  assert.equal(ce.expiration, '2026-01-01T00:00:10Z');
  assert.equal(hasExpired(ce, Date.parse('2026-01-01T00:00:09Z')), false);
  assert.equal(hasExpired(ce, Date.parse('2026-01-01T00:00:11Z')), true);
  assert.equal(hasExpired({ expiration: 'garbage' }), false);
});

test('rawPayload: Go bool spellings; a raw message is wrapped as data_base64 on delivery', () => {
  assert.equal(isRawPayload({ rawPayload: 'true' }), true);
  assert.equal(isRawPayload({ rawPayload: 'F' }), false);
  assert.equal(isRawPayload({}), false);
  assert.throws(() => isRawPayload({ rawPayload: 'yes' }), /rawPayload="yes" is not a boolean/);
  const ce = fromRawPayload(Buffer.from('raw!'), 'orders', 'pubsub');
  assert.equal(Buffer.from(String(ce.data_base64), 'base64').toString(), 'raw!');
  assert.equal(ce.datacontenttype, 'application/octet-stream');
});

test('topic scopes: allowedTopics, protectedTopics, publishing and subscription scopes per app', () => {
  const md = { allowedTopics: 'orders,audit,payments', protectedTopics: 'audit', publishingScopes: 'checkout=orders,audit;auditor=', subscriptionScopes: 'checkout=payments' };
  const checkout = compileTopicScopes(md, 'checkout', 'pubsub');
  assert.equal(checkout.canPublish('orders'), true);
  assert.equal(checkout.canPublish('audit'), true, 'listed for checkout');
  assert.equal(checkout.canPublish('payments'), false, 'checkout is limited to its list');
  assert.equal(checkout.canPublish('other'), false, 'not in allowedTopics');
  assert.equal(checkout.canSubscribe('payments'), true);
  assert.equal(checkout.canSubscribe('orders'), false);
  const auditor = compileTopicScopes(md, 'auditor', 'pubsub');
  assert.equal(auditor.canPublish('orders'), false, 'an empty list: nothing');
  const other = compileTopicScopes(md, 'other', 'pubsub');
  assert.equal(other.canPublish('orders'), true);
  assert.equal(other.canPublish('audit'), false, 'protected');
  assert.throws(() => compileTopicScopes({ publishingScopes: 'nonsense' }, 'a', 'pubsub'), /pubsub pubsub: metadata publishingScopes entry "nonsense" is not app=topic1,topic2/);
});

test("the app's answer: daprd's status rules", () => {
  assert.deepEqual(verdictOf(Buffer.alloc(0)), { outcome: 'success' });
  assert.deepEqual(verdictOf(Buffer.from('OK')), { outcome: 'success' }, 'not JSON: success');
  assert.deepEqual(verdictOf(Buffer.from('{"status":"SUCCESS"}')), { outcome: 'success' });
  assert.equal(verdictOf(Buffer.from('{"status":"RETRY"}')).outcome, 'retry');
  assert.equal(verdictOf(Buffer.from('{"status":"DROP"}')).outcome, 'drop');
  assert.equal(verdictOf(Buffer.from('{"status":"success"}')).outcome, 'retry', 'daprd compares exactly: an unknown status is retried');
  assert.equal(statusVerdict('', true).outcome, 'retry', 'a bulk entry without a status is retried');
});

test('bulk entries: events as bytes for their content type', () => {
  assert.equal(eventBytes({ a: 1 }, 'application/json').toString(), '{"a":1}');
  assert.equal(eventBytes('text', 'text/plain').toString(), 'text');
  assert.deepEqual([...eventBytes('AP8B', 'application/octet-stream')], [0, 255, 1]);
  assert.throws(() => eventBytes({ a: 1 }, 'text/plain'), /must be a string/);
  assert.throws(() => eventBytes('***', 'application/octet-stream'), /must be base64/);
});
