import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { compileRoutes } from './routes.js';
import { declarativeSubscriptions, programmaticSubscriptions } from './subscriptions.js';

test('routes: the first matching CEL rule, else the default, else no route; compiled once', () => {
  const r = compileRoutes({ rules: [{ match: 'event.type == "widget"', path: '/widgets' }, { match: 'has(event.data.price) && event.data.price > 100', path: '/expensive' }], default: '/other' }, 'test');
  assert.equal(r.pathFor({ type: 'widget', data: {} }), '/widgets');
  assert.equal(r.pathFor({ type: 'gadget', data: { price: 150 } }), '/expensive');
  assert.equal(r.pathFor({ type: 'gadget', data: { price: 5 } }), '/other');
  assert.deepEqual(r.describe(), [{ match: 'event.type == "widget"', path: '/widgets' }, { match: 'has(event.data.price) && event.data.price > 100', path: '/expensive' }, { match: '', path: '/other' }]);
  const noDefault = compileRoutes({ rules: [{ match: 'event.type == "widget"', path: '/w' }] }, 'test');
  assert.equal(noDefault.pathFor({ type: 'gadget' }), undefined);
  // As daprd: a rule that fails on the event (a missing field) is an error, not a non-match.
  assert.throws(() => compileRoutes({ rules: [{ match: 'event.data.price > 1', path: '/p' }] }, 'test').pathFor({ id: 'e1', data: {} }), /failed on event e1/);
  assert.throws(() => compileRoutes({ rules: [{ match: 'event.type', path: '/p' }] }, 'test').pathFor({ type: 'x' }), /did not yield a bool/);
  assert.throws(() => compileRoutes({ rules: [{ match: 'event.type ==', path: '/p' }] }, 'sub s'), /sub s: routes\.rules\[0\]\.match: "event\.type ==" is not a CEL expression/);
  assert.throws(() => compileRoutes({ rules: [{ match: '', path: '/p' }] }, 'sub s'), /routes\.rules\[0\]\.match is empty/);
});

test('routes: a string-equality rule agrees with JS equality for any event type (property)', () => {
  const r = compileRoutes({ rules: [{ match: 'event.type == "order.created"', path: '/created' }], default: '/rest' }, 'prop');
  fc.assert(fc.property(fc.oneof(fc.string(), fc.constant('order.created')), (type) => {
    assert.equal(r.pathFor({ type }), type === 'order.created' ? '/created' : '/rest');
  }));
});

test('programmatic: v1 route, v2 routes, dead letter, metadata, bulk defaults; bad entries left out with where', () => {
  const { routes, problems } = programmaticSubscriptions([
    { pubsubname: 'pubsub', topic: 'orders', route: '/orders', deadLetterTopic: 'dead', metadata: { rawPayload: 'true' } },
    { pubsubname: 'pubsub', topic: 'widgets', routes: { rules: [{ match: 'event.type == "w"', path: '/w' }], default: '/d' }, bulkSubscribe: { enabled: true } },
    { pubsubname: '', topic: 'x', route: '/x' },
    { pubsubname: 'pubsub', topic: 'noroute' },
    { pubsubname: 'pubsub', topic: 'badrule', routes: { rules: [{ match: '((', path: '/b' }] } },
    'nonsense',
  ], 'app nodeapp GET /dapr/subscribe');
  assert.equal(routes.length, 2);
  assert.deepEqual([routes[0].pubsubName, routes[0].topic, routes[0].deadLetterTopic, routes[0].metadata.rawPayload, routes[0].source], ['pubsub', 'orders', 'dead', 'true', 'programmatic']);
  assert.equal(routes[0].routes.pathFor({}), '/orders');
  assert.deepEqual(routes[1].bulkSubscribe, { enabled: true, maxMessagesCount: 100, maxAwaitDurationMs: 1000 });
  assert.equal(problems.length, 4);
  assert.match(problems[0], /^app nodeapp GET \/dapr\/subscribe \[2\]\.pubsubname is empty/);
  assert.match(problems[1], /\[3\] has no route/);
  assert.match(problems[2], /\[4\]: routes\.rules\[0\]\.match: "\(\(" is not a CEL expression/);
  assert.match(problems[3], /\[5\] is not an object/);
  assert.throws(() => programmaticSubscriptions({ topic: 'x' }, 'app a GET /dapr/subscribe'), /must be a JSON array/);
  assert.deepEqual(programmaticSubscriptions(null, 'x').routes, []);
});

test('declarative: scopes select the apps; invalid ones reported by name', () => {
  const obj = (name: string, spec: object, scopes?: string[]) => ({ apiVersion: 'dapr.io/v2alpha1', kind: 'Subscription', metadata: { name, namespace: 'ns' }, spec, ...(scopes ? { scopes } : {}) });
  const objs = [
    obj('all', { pubsubname: 'pubsub', topic: 'a', routes: { default: '/a' } }),
    obj('mine', { pubsubname: 'pubsub', topic: 'b', routes: { default: '/b' } }, ['nodeapp']),
    obj('theirs', { pubsubname: 'pubsub', topic: 'c', routes: { default: '/c' } }, ['other']),
  ];
  assert.deepEqual(declarativeSubscriptions(objs, 'nodeapp').routes.map((r) => [r.name, r.topic, r.source]), [['all', 'a', 'declarative'], ['mine', 'b', 'declarative']]);
  assert.deepEqual(declarativeSubscriptions(objs, 'other').routes.map((r) => r.name), ['all', 'theirs']);
  const bad = declarativeSubscriptions([obj('broken', { pubsubname: 'pubsub' })], 'nodeapp');
  assert.match(bad.problems[0], /^Subscription broken: spec\.topic is empty/);
});
