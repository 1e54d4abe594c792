/**
 * An app's subscriptions in one shape, from either source Dapr has:
 *
 *  - programmatic: the app's answer to GET /dapr/subscribe (or AppCallback
 *    ListTopicSubscriptions, converted to the same JSON): an array of
 *    {pubsubname, topic, route} (v1) or {pubsubname, topic, routes: {rules, default}} (v2),
 *    with deadLetterTopic, metadata and bulkSubscribe;
 *  - declarative: `Subscription` resources (dapr.io/v2alpha1 spec.routes, v1alpha1 spec.route),
 *    applied to the app ids of `scopes` (all apps when empty).
 *
 * Rules as daprd builds them (pkg/runtime/pubsub/subscriptions.go): the rules in order, then
 * the default path (routes.default, else route) as a rule that always matches. An entry that
 * cannot be used (no pubsubname or topic, no path at all, a rule that does not compile) is left
 * out and reported in `problems` with where it is; the others still apply.
 */
import type { KubeObject } from '../api/types.js';
import { CrossmeshError, toCrossmeshError } from '../errors.js';
import { compileRoutes, type CompiledRoutes, type RouteRule } from './routes.js';

export interface TopicRoute {
  pubsubName: string;
  topic: string;
  routes: CompiledRoutes;
  deadLetterTopic?: string;
  metadata: Record<string, string>;
  bulkSubscribe?: { enabled: boolean; maxMessagesCount: number; maxAwaitDurationMs: number };
  source: 'programmatic' | 'declarative';
  /** For messages and status: `GET /dapr/subscribe [2]` or the Subscription's name. */
  name: string;
}

/** Dapr's bulk subscribe defaults (pkg/runtime/subscription bulksubscription.go). */
const BULK_DEFAULT_COUNT = 100;
const BULK_DEFAULT_AWAIT_MS = 1000;

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/**
 * Subscription metadata as strings. The JS SDK JSON-encodes every value it sends
 * (`"rawPayload": "\"true\""`): a value that is a JSON string literal is taken as that string.
 */
function stringMap(v: unknown): Record<string, string> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return {};
  const unquote = (x: string): string => {
    if (x.length >= 2 && x.startsWith('"') && x.endsWith('"')) {
      try {
        const s = JSON.parse(x);
        if (typeof s === 'string') return s;
      } catch { /* kept as written */ }
    }
    return x;
  };
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, typeof x === 'string' ? unquote(x) : JSON.stringify(x)]));
}

function positive(v: unknown, def: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n > 0 ? n : def;
}

/** One subscription entry (programmatic JSON or a Subscription's spec) → a route; throws CM_ERR_CONFIG naming `where`. */
function toRoute(e: Record<string, unknown>, where: string, source: TopicRoute['source'], name: string): TopicRoute {
  const pubsubName = str(e.pubsubname ?? e.pubsubName);
  const topic = str(e.topic);
  if (!pubsubName) throw new CrossmeshError('CM_ERR_CONFIG', `${where}.pubsubname is empty; name the pubsub component`);
  if (!topic) throw new CrossmeshError('CM_ERR_CONFIG', `${where}.topic is empty; name the topic`);
  const routes = (e.routes && typeof e.routes === 'object' ? e.routes : {}) as { rules?: unknown; default?: unknown };
  const rules = Array.isArray(routes.rules) ? (routes.rules as RouteRule[]) : [];
  const def = str(routes.default) || str(e.route);
  if (rules.length === 0 && !def) throw new CrossmeshError('CM_ERR_CONFIG', `${where} has no route: give route, routes.default or routes.rules`);
  const bulk = e.bulkSubscribe && typeof e.bulkSubscribe === 'object' ? (e.bulkSubscribe as Record<string, unknown>) : undefined;
  const dlq = str(e.deadLetterTopic);
  return {
    pubsubName,
    topic,
    routes: compileRoutes({ rules, default: def }, where),
    ...(dlq ? { deadLetterTopic: dlq } : {}),
    metadata: stringMap(e.metadata),
    ...(bulk?.enabled === true ? { bulkSubscribe: { enabled: true, maxMessagesCount: positive(bulk.maxMessagesCount, BULK_DEFAULT_COUNT), maxAwaitDurationMs: positive(bulk.maxAwaitDurationMs, BULK_DEFAULT_AWAIT_MS) } } : {}),
    source,
    name,
  };
}

export interface ParsedSubscriptions {
  routes: TopicRoute[];
  /** Entries left out, each naming where it is and why. */
  problems: string[];
}

/** The app's GET /dapr/subscribe answer. A body that is not an array is CM_ERR_CONFIG. */
export function programmaticSubscriptions(body: unknown, where: string): ParsedSubscriptions {
  if (body === null || body === undefined) return { routes: [], problems: [] };
  if (!Array.isArray(body)) throw new CrossmeshError('CM_ERR_CONFIG', `${where}: the answer must be a JSON array of subscriptions ({pubsubname, topic, route}), got ${typeof body}`);
  const routes: TopicRoute[] = [];
  const problems: string[] = [];
  body.forEach((e, i) => {
    const at = `${where} [${i}]`;
    if (!e || typeof e !== 'object' || Array.isArray(e)) {
      problems.push(`${at} is not an object`);
      return;
    }
    try {
      routes.push(toRoute(e as Record<string, unknown>, at, 'programmatic', `GET /dapr/subscribe [${i}]`));
    } catch (err) {
      problems.push(toCrossmeshError(err).message);
    }
  });
  return { routes, problems };
}

/** The Subscription resources that apply to `appId` (scopes empty = every app). */
export function declarativeSubscriptions(objects: readonly KubeObject[], appId: string): ParsedSubscriptions {
  const routes: TopicRoute[] = [];
  const problems: string[] = [];
  for (const o of [...objects].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
    const scopes = o.scopes as unknown;
    if (Array.isArray(scopes) && scopes.length > 0 && !scopes.includes(appId)) continue;
    const name = `Subscription ${o.metadata.name}`;
    try {
      routes.push(toRoute((o.spec ?? {}) as Record<string, unknown>, `${name}: spec`, 'declarative', o.metadata.name));
    } catch (err) {
      problems.push(toCrossmeshError(err).message);
    }
  }
  return { routes, problems };
}
