import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateObject, type ComponentObject, type ResiliencyObject } from './validation.js';
import { invalid } from '../../test/support/api-asserts.js';
import { parseManifests } from './manifest.js';

const comp = (spec: unknown, extra: object = {}) => ({ apiVersion: 'dapr.io/v1alpha1', kind: 'Component', metadata: { name: 'statestore', namespace: 'dapr-test' }, spec, ...extra });

test('Component: defaults, value coercion, top-level auth and scopes', () => {
  const c = validateObject(
    comp(
      { type: 'state.redis', metadata: [{ name: 'redisHost', value: 'localhost:6379' }, { name: 'redisDB', value: 0 }, { name: 'enableTLS', value: false }, { name: 'redisPassword', secretKeyRef: { name: 'redis', key: 'redis-password' } }], initTimeout: '10s' },
      { auth: { secretStore: 'kubernetes' }, scopes: ['nodeapp'] },
    ),
  ) as ComponentObject;
  assert.equal(c.spec.version, 'v1');
  assert.equal(c.spec.ignoreErrors, false);
  assert.deepEqual(c.spec.metadata.map((m) => m.value), ['localhost:6379', '0', 'false', undefined]);
  assert.deepEqual(c.auth, { secretStore: 'kubernetes' });
  assert.deepEqual(c.scopes, ['nodeapp']);
  const bare = validateObject(comp({ type: 'state.in-memory' })) as ComponentObject;
  assert.deepEqual(bare.spec.metadata, []);
});

test('Component: bad inputs', () => {
  invalid(comp({}), 'spec.type', /is required/);
  invalid(comp({ type: 'redis' }), 'spec.type', /like "state.redis"/);
  invalid(comp({ type: 'State.Redis' }), 'spec.type');
  invalid(comp({ type: 'state.redis', metadata: [{ value: 'x' }] }), 'spec.metadata[0].name', /is required/);
  invalid(comp({ type: 'state.redis', metadata: [{ name: 'p', value: 'x', secretKeyRef: { name: 's', key: 'k' } }] }), 'spec.metadata[0]', /both value and secretKeyRef/);
  invalid(comp({ type: 'state.redis', metadata: [{ name: 'p', secretKeyRef: { key: 'k' } }] }), 'spec.metadata[0].secretKeyRef.name', /is required/);
  invalid(comp({ type: 'state.redis', metadata: [{ name: 'a', value: '1' }, { name: 'a', value: '2' }] }), 'spec.metadata[1].name', /duplicate/);
  invalid(comp({ type: 'state.redis', initTimeout: '10' }), 'spec.initTimeout', /duration/);
  invalid(comp({ type: 'state.redis', initTimeout: 5 }), 'spec.initTimeout', /must be a string/);
  invalid(comp({ type: 'state.redis', ignoreErrors: 'no' }), 'spec.ignoreErrors', /true or false/);
  invalid(comp({ type: 'state.redis' }, { scopes: 'nodeapp' }), 'scopes', /must be a list/);
  invalid(comp({ type: 'state.redis' }, { auth: {} }), 'auth.secretStore', /is required/);
});

const res = (spec: unknown) => ({ apiVersion: 'dapr.io/v1alpha1', kind: 'Resiliency', metadata: { name: 'myresiliency', namespace: 'dapr-test' }, spec, scopes: ['nodeapp'] });
const GOOD = {
  policies: {
    timeouts: { general: '5s' },
    retries: { r1: { policy: 'constant', duration: '5s', maxInterval: '15s', maxRetries: 3, matching: { httpStatusCodes: '429,500-599' } }, r2: { maxRetries: -1 } },
    circuitBreakers: { cb1: { maxRequests: 1, interval: '8s', timeout: '45s', trip: 'consecutiveFailures > 5' } },
  },
  targets: {
    apps: { nodeapp: { timeout: 'general', retry: 'r1', circuitBreaker: 'cb1' } },
    components: { statestore: { outbound: { timeout: 'general', retry: 'r1' } } },
  },
};

test('Resiliency: the documented example, retry policy default', () => {
  const r = validateObject(res(GOOD)) as ResiliencyObject;
  assert.equal(r.spec.policies.retries!.r2.policy, 'constant');
  assert.equal(r.spec.policies.timeouts!.general, '5s');
  assert.deepEqual(r.scopes, ['nodeapp']);
});

test('Resiliency: bad inputs', () => {
  const withPolicies = (p: object) => res({ policies: { ...GOOD.policies, ...p } });
  invalid(withPolicies({ timeouts: { general: 'five' } }), 'spec.policies.timeouts.general', /duration/);
  invalid(withPolicies({ timeouts: { general: '-1s' } }), 'spec.policies.timeouts.general', /negative/);
  invalid(withPolicies({ retries: { r1: { policy: 'linear' } } }), 'spec.policies.retries.r1.policy', /constant, exponential/);
  invalid(withPolicies({ retries: { r1: { maxRetries: -2 } } }), 'spec.policies.retries.r1.maxRetries', /-1/);
  invalid(withPolicies({ retries: { r1: { matching: { httpStatusCodes: '429,600' } } } }), 'spec.policies.retries.r1.matching.httpStatusCodes', /"600"/);
  invalid(withPolicies({ retries: { r1: { matching: { httpStatusCodes: '599-500' } } } }), 'spec.policies.retries.r1.matching.httpStatusCodes');
  invalid(withPolicies({ circuitBreakers: { cb1: { trip: 'failures > five' } } }), 'spec.policies.circuitBreakers.cb1.trip', /consecutiveFailures/);
  invalid(withPolicies({ circuitBreakers: { cb1: { interval: '8' } } }), 'spec.policies.circuitBreakers.cb1.interval', /missing unit/);
  const err = invalid(res({ ...GOOD, targets: { apps: { nodeapp: { retry: 'r9' } } } }), 'spec.targets.apps.nodeapp.retry', /"r9".*defined: r1, r2/);
  assert.equal(err.details.problems!.length, 1);
  invalid(res({ targets: { components: { statestore: { outbound: { circuitBreaker: 'cb' } } } } }), 'spec.targets.components.statestore.outbound.circuitBreaker', /none are defined/);
  // a reference error is still reported beside a type error elsewhere
  const e2 = invalid(res({ policies: { timeouts: { general: 5 } }, targets: { apps: { a: { timeout: 'nope' } } } }), 'spec.targets.apps.a.timeout');
  assert.equal(e2.details.problems!.length, 2);
});

test('Configuration: secrets scopes validated (defaultAccess allow|deny, one entry per store); other sections kept', () => {
  const cfg = (spec: unknown) => ({ apiVersion: 'dapr.io/v1alpha1', kind: 'Configuration', metadata: { name: 'appconfig', namespace: 'ns' }, spec });
  const ok = validateObject(cfg({ tracing: { samplingRate: '1' }, secrets: { scopes: [{ storeName: 'kubernetes', defaultAccess: 'Deny', allowedSecrets: ['redis'] }] } })) as { spec: any };
  assert.equal(ok.spec.secrets.scopes[0].allowedSecrets[0], 'redis');
  assert.deepEqual(ok.spec.tracing, { samplingRate: '1' });
  assert.deepEqual((validateObject(cfg(undefined)) as { spec: unknown }).spec, {});
  invalid(cfg({ secrets: { scopes: [{ storeName: 'kubernetes', defaultAccess: 'maybe' }] } }), 'spec.secrets.scopes[0].defaultAccess', /"allow" or "deny"/);
  invalid(cfg({ secrets: { scopes: [{ defaultAccess: 'deny' }] } }), 'spec.secrets.scopes[0].storeName', /is required/);
  invalid(cfg({ secrets: { scopes: [{ storeName: 'a' }, { storeName: 'a' }] } }), 'spec.secrets.scopes[1].storeName', /scoped twice/);
});

const sub = (spec: unknown, apiVersion = 'dapr.io/v2alpha1', extra: object = {}) => ({ apiVersion, kind: 'Subscription', metadata: { name: 'orders-sub', namespace: 'dapr-test' }, spec, ...extra });

test('Subscription: v2alpha1 as written; a v1alpha1 manifest is read as v2alpha1 (route → routes.default)', () => {
  const v2 = validateObject(sub({ pubsubname: 'pubsub', topic: 'orders', routes: { rules: [{ match: 'event.type == "widget"', path: '/widgets' }], default: '/orders' }, deadLetterTopic: 'dead', bulkSubscribe: { enabled: true, maxMessagesCount: 10 } }, 'dapr.io/v2alpha1', { scopes: ['nodeapp'] })) as any;
  assert.equal(v2.spec.routes.rules[0].path, '/widgets');
  assert.deepEqual(v2.scopes, ['nodeapp']);
  const [doc] = parseManifests('apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata: {name: old}\nspec: {pubsubname: pubsub, topic: orders, route: /orders}\nscopes: [nodeapp]\n', { file: 'sub.yaml', defaultNamespace: 'dapr-test' });
  assert.equal(doc.object.apiVersion, 'dapr.io/v2alpha1');
  assert.deepEqual(doc.object.spec, { pubsubname: 'pubsub', topic: 'orders', routes: { default: '/orders' } });
  assert.equal(doc.object.metadata.namespace, 'dapr-test');
});

test('Subscription: bad inputs name the field', () => {
  invalid(sub({ topic: 'orders', routes: { default: '/o' } }), 'spec.pubsubname', /is required/);
  invalid(sub({ pubsubname: 'pubsub', routes: { default: '/o' } }), 'spec.topic', /is required/);
  invalid(sub({ pubsubname: 'pubsub', topic: 'orders' }), 'spec.routes', /has no route: give routes.default/);
  invalid(sub({ pubsubname: 'pubsub', topic: 'orders', routes: { rules: [{ match: 'event.type ==', path: '/w' }] } }), 'spec.routes.rules[0].match', /is not a CEL expression/);
  invalid(sub({ pubsubname: 'pubsub', topic: 'orders', routes: { rules: [{ match: 'true' }] } }), 'spec.routes.rules[0].path', /is required/);
  invalid(sub({ pubsubname: 'pubsub', topic: 'orders', routes: { default: '/o' }, bulkSubscribe: { enabled: true, maxMessagesCount: 0 } }), 'spec.bulkSubscribe.maxMessagesCount');
});
