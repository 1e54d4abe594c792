/**
 * The sidecar's subscriber: keeps one broker subscription per (pubsub, topic) the app subscribes
 * to, and turns each message into a delivery to the app as daprd's subscription handler does
 * (dapr pkg/runtime/subscription/subscription.go):
 *
 *  1. the message's CloudEvent: parsed from its JSON, or, for a route with metadata
 *     rawPayload=true, built around the raw bytes (data_base64); a message that is not a
 *     CloudEvent goes to the dead-letter topic if there is one, else is retried;
 *  2. an expired event (its `expiration` passed) is dropped (and dead-lettered if configured);
 *  3. the route: the first rule whose CEL `match` holds, else the default path; no match → the
 *     event is dropped (and dead-lettered if configured), as daprd skips it;
 *  4. the delivery runs inside the component's inbound Resiliency policy
 *     (targets.components.<pubsub>.inbound): a 'retry' verdict is an error the policy retries;
 *  5. the final verdict: success → acknowledged; drop → acknowledged (dead-lettered if
 *     configured); retry → dead-lettered and acknowledged when the route has a dead-letter topic,
 *     else left pending: the broker redelivers it (at least once, to any instance of the group).
 *
 * Consumer group: the component's (metadata consumerID, default the app id), so instances of one
 * app id in several clusters on a shared broker split the messages; consumer: this sidecar.
 *
 * Subscriptions: the app's programmatic ones (read once the app is up, retried until it answers)
 * merged with the declarative Subscription resources of its namespace (followed live). A pubsub
 * component that (re)loads gets its subscriptions made again on the new instance.
 */
import { EventEmitter } from 'node:events';
import { formatError, toCrossmeshError } from '../../errors.js';
import type { DeliveryResult, PubSubMessage, TopicSubscription } from '../../pubsub/types.js';
import { Backoff, sleep } from '../../util/backoff.js';
import { log } from '../../util/log.js';
import type { LoadedPubSub } from '../components.js';
import { NoSubscriptions, type AppSubscriberChannel, type AppVerdict } from './app-channel.js';
import { fromRawPayload, hasExpired, isRawPayload, type CloudEvent } from './cloudevents.js';
import type { PubSubMetrics } from './metrics.js';

/** One subscription of the app, from either source (src/pubsub/subscriptions.ts makes them). */
export interface SubscriptionRoute {
  pubsubName: string;
  topic: string;
  routes: {
    pathFor(event: Record<string, unknown>): string | undefined;
    /** The rules as written, the default last with match '' (for /v1.0/metadata). */
    describe?(): { match: string; path: string }[];
  };
  deadLetterTopic?: string;
  metadata: Record<string, string>;
  bulkSubscribe?: { enabled: boolean; maxMessagesCount: number; maxAwaitDurationMs: number };
  source: 'programmatic' | 'declarative';
  /** The Subscription's name (declarative) or `GET /dapr/subscribe [i]` (programmatic). */
  name: string;
}

/** What `status` and /v1.0/metadata show of one subscription. */
export interface SubscriptionStatus {
  pubsubname: string;
  topic: string;
  deadLetterTopic: string;
  type: 'PROGRAMMATIC' | 'DECLARATIVE';
  rules: { match: string; path: string }[];
  metadata: Record<string, string>;
  /** crossmesh: subscribed | waiting (its pubsub is not loaded) | refused (scopes) . */
  state: 'subscribed' | 'waiting' | 'refused';
  error?: string;
  group?: string;
}

export interface PubSubRegistry extends EventEmitter<{ change: [] }> {
  getPubSub(name: string): LoadedPubSub | undefined;
}

export interface DeclarativeSource extends EventEmitter<{ change: [] }> {
  list(): SubscriptionRoute[];
}

export interface SubscriberOptions {
  appId: string;
  /** This sidecar's consumer name inside each group (unique per instance). */
  consumer: string;
  registry: PubSubRegistry;
  channel: AppSubscriberChannel;
  /** The app's programmatic subscriptions (calls the channel and parses the answer). */
  programmatic: () => Promise<SubscriptionRoute[]>;
  declarative?: DeclarativeSource;
  metrics?: PubSubMetrics;
  /** For log lines: `sidecar cluster-1/ns/app-xyz`. */
  label: string;
  /** Messages in the app at once per subscription (default 16; a bulk route gets at least its batch size). */
  maxConcurrency?: number;
}

interface Active {
  key: string;
  route: SubscriptionRoute;
  ps: LoadedPubSub;
  sub?: TopicSubscription;
  /** Resolves when subscribe() finished (or failed). */
  opening: Promise<void>;
  batcher?: Batcher;
}

const keyOf = (r: { pubsubName: string; topic: string }) => `${r.pubsubName}\u0000${r.topic}`;

export class Subscriber {
  private programmaticRoutes: SubscriptionRoute[] = [];
  private readonly active = new Map<string, Active>();
  private statuses: SubscriptionStatus[] = [];
  private started = false;
  private closed = false;
  private scheduled = false;
  private reconciling: Promise<void> = Promise.resolve();
  private readonly onChange = () => this.schedule();

  constructor(private readonly opts: SubscriberOptions) {}

  /** Reads the app's subscriptions (retrying until it answers or the subscriber closes), then subscribes. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.opts.registry.on('change', this.onChange);
    this.opts.declarative?.on('change', this.onChange);
    const backoff = new Backoff({ initialMs: 200, maxMs: 5000, jitter: 0.2 });
    let warned = false;
    while (!this.closed) {
      try {
        this.programmaticRoutes = await this.opts.programmatic();
        break;
      } catch (err) {
        if (err instanceof NoSubscriptions) {
          log.warn(`${this.opts.label}: ${err.message}`);
          break;
        }
        if (!warned) log.warn(`${this.opts.label}: cannot read the app's subscriptions yet (${toCrossmeshError(err).message}); retrying`);
        warned = true;
        await sleep(backoff.next());
      }
    }
    this.schedule();
    await this.settled();
  }

  /** Resolves once the subscriptions match the current routes and components. */
  async settled(): Promise<void> {
    for (;;) {
      const p = this.reconciling;
      await p;
      if (!this.scheduled && p === this.reconciling) break;
      await new Promise<void>((r) => setImmediate(r));
    }
    await Promise.all([...this.active.values()].map((a) => a.opening));
  }

  status(): SubscriptionStatus[] {
    return this.statuses;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.opts.registry.off('change', this.onChange);
    this.opts.declarative?.off('change', this.onChange);
    await this.reconciling.catch(() => undefined);
    await Promise.allSettled([...this.active.values()].map((a) => this.stop(a)));
    this.active.clear();
  }

  private schedule(): void {
    if (this.scheduled || this.closed || !this.started) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.reconciling = this.reconciling.then(() => this.reconcile()).catch((err) => log.error(`${this.opts.label}: subscriptions: ${formatError(err)}`));
    });
  }

  /** The routes to serve: declarative first, then programmatic; a repeated (pubsub, topic) is logged and the first kept (daprd). */
  private desired(): SubscriptionRoute[] {
    const out = new Map<string, SubscriptionRoute>();
    for (const r of [...(this.opts.declarative?.list() ?? []), ...this.programmaticRoutes]) {
      const k = keyOf(r);
      const prev = out.get(k);
      if (prev) {
        log.warn(`${this.opts.label}: ${r.source} subscription ${r.name} to topic ${r.topic} of pubsub ${r.pubsubName} repeats ${prev.source} subscription ${prev.name}; the first is used`);
        continue;
      }
      out.set(k, r);
    }
    return [...out.values()];
  }

  private async reconcile(): Promise<void> {
    if (this.closed) return;
    const statuses: SubscriptionStatus[] = [];
    const want = new Map<string, { route: SubscriptionRoute; ps: LoadedPubSub }>();
    for (const route of this.desired()) {
      const base: SubscriptionStatus = {
        pubsubname: route.pubsubName, topic: route.topic, deadLetterTopic: route.deadLetterTopic ?? '',
        type: route.source === 'declarative' ? 'DECLARATIVE' : 'PROGRAMMATIC', rules: route.routes.describe?.() ?? [], metadata: route.metadata, state: 'waiting',
      };
      const ps = this.opts.registry.getPubSub(route.pubsubName);
      if (!ps) {
        statuses.push({ ...base, error: `pubsub ${route.pubsubName} is not loaded (no such Component, or it failed: see crossmesh status)` });
        continue;
      }
      if (!ps.scopes.canSubscribe(route.topic)) {
        statuses.push({ ...base, state: 'refused', group: ps.group, error: `topic ${route.topic} is not allowed for app id ${this.opts.appId} by the subscriptionScopes / allowedTopics of pubsub ${ps.name}` });
        continue;
      }
      statuses.push({ ...base, state: 'subscribed', group: ps.group });
      want.set(keyOf(route), { route, ps });
    }
    const stopping: Promise<void>[] = [];
    for (const [k, a] of this.active) {
      const w = want.get(k);
      if (w && w.ps.store === a.ps.store && sameShape(w.route, a.route)) {
        // Same broker subscription: the routes and dead-letter topic are read per message.
        a.route = w.route;
        a.ps = w.ps;
        want.delete(k);
        continue;
      }
      this.active.delete(k);
      stopping.push(this.stop(a));
    }
    await Promise.allSettled(stopping);
    for (const [k, { route, ps }] of want) {
      const a: Active = { key: k, route, ps, opening: Promise.resolve() };
      this.active.set(k, a);
      a.opening = this.open(a);
    }
    this.statuses = statuses;
  }

  private async open(a: Active): Promise<void> {
    const { route, ps } = a;
    const bulk = route.bulkSubscribe?.enabled ? route.bulkSubscribe : undefined;
    const base = this.opts.maxConcurrency ?? 16;
    if (bulk) a.batcher = new Batcher(this, a, Math.max(1, bulk.maxMessagesCount), Math.max(1, bulk.maxAwaitDurationMs));
    const handler = a.batcher ? (m: PubSubMessage) => a.batcher!.add(m) : (m: PubSubMessage) => this.handle(a, m);
    try {
      a.sub = await ps.store.subscribe({
        topic: route.topic, group: ps.group, consumer: this.opts.consumer, handler,
        maxConcurrency: bulk ? Math.max(base, bulk.maxMessagesCount) : base,
      });
      log.info(`${this.opts.label}: subscribed to topic ${route.topic} of pubsub ${ps.name} (group ${ps.group}, ${route.source} ${route.name})`);
    } catch (err) {
      log.warn(`${this.opts.label}: cannot subscribe to topic ${route.topic} of pubsub ${ps.name}: ${formatError(err)}`);
      const st = this.statuses.find((s) => s.pubsubname === route.pubsubName && s.topic === route.topic);
      if (st) Object.assign(st, { state: 'waiting', error: toCrossmeshError(err).message });
    }
  }

  private async stop(a: Active): Promise<void> {
    await a.opening;
    a.batcher?.flushNow();
    await a.sub?.close().catch((err) => log.warn(`${this.opts.label}: closing the subscription to ${a.route.topic}: ${toCrossmeshError(err).message}`));
  }

  /** The CloudEvent of a message, or undefined (logged) when it is not one. */
  private eventOf(a: Active, m: PubSubMessage): { event: CloudEvent; raw: boolean } | undefined {
    let raw = false;
    try {
      raw = isRawPayload(a.route.metadata);
    } catch (err) {
      log.warn(`${this.opts.label}: subscription ${a.route.name}: ${(err as Error).message}`);
      return undefined;
    }
    if (raw) return { event: fromRawPayload(m.data, m.topic, a.ps.name), raw };
    try {
      const v = JSON.parse(m.data.toString('utf8'));
      if (v && typeof v === 'object' && !Array.isArray(v)) return { event: v as CloudEvent, raw };
    } catch { /* reported below */ }
    log.warn(`${this.opts.label}: message ${m.id} of topic ${m.topic} in pubsub ${a.ps.name} is not a CloudEvent (published with rawPayload? subscribe with metadata rawPayload: "true")`);
    return undefined;
  }

  /** Steps 1–3 of the header: the event and its path, or the result when it is not delivered. */
  async prepare(a: Active, m: PubSubMessage): Promise<{ event: CloudEvent; path: string; body: Buffer } | DeliveryResult> {
    const { ps } = a;
    const parsed = this.eventOf(a, m);
    if (!parsed) {
      if (await this.deadLetter(a, m)) return 'success';
      this.opts.metrics?.retried(ps.name, m.topic);
      return 'retry';
    }
    const { event } = parsed;
    if (hasExpired(event)) {
      log.warn(`${this.opts.label}: dropping expired pub/sub event ${String(event.id)} as of ${String(event.expiration)}`);
      this.opts.metrics?.dropped(ps.name, m.topic);
      await this.deadLetter(a, m, false);
      return 'drop';
    }
    let path: string | undefined;
    try {
      path = a.route.routes.pathFor(event);
    } catch (err) {
      // daprd: a rule that fails on the event is an error: dead-lettered, else retried.
      log.warn(`${this.opts.label}: matching a route for event ${String(event.id)} of topic ${m.topic}: ${(err as Error).message}`);
      if (await this.deadLetter(a, m)) return 'success';
      this.opts.metrics?.retried(ps.name, m.topic);
      return 'retry';
    }
    if (path === undefined) {
      log.debug(`${this.opts.label}: no matching route for event ${String(event.id)} in pubsub ${ps.name} and topic ${m.topic}; skipping`);
      this.opts.metrics?.dropped(ps.name, m.topic);
      await this.deadLetter(a, m, false);
      return 'drop';
    }
    // A raw payload's event was built here; any other is delivered as it was stored.
    return { event, path, body: parsed.raw ? Buffer.from(JSON.stringify(event)) : m.data };
  }

  /** Steps 4–5: a verdict (after the inbound policy) → the broker's result. */
  async settle(a: Active, m: PubSubMessage, verdict: AppVerdict): Promise<DeliveryResult> {
    const { ps } = a;
    if (verdict.outcome === 'success') {
      this.opts.metrics?.delivered(ps.name, m.topic);
      return 'success';
    }
    if (verdict.outcome === 'drop') {
      log.warn(`${this.opts.label}: message ${m.id} of topic ${m.topic} dropped: ${verdict.reason}`);
      this.opts.metrics?.dropped(ps.name, m.topic);
      await this.deadLetter(a, m, false);
      return 'drop';
    }
    if (await this.deadLetter(a, m)) return 'success';
    log.warn(`${this.opts.label}: message ${m.id} of topic ${m.topic} (attempt ${m.attempt}) will be redelivered: ${verdict.reason}`);
    this.opts.metrics?.retried(ps.name, m.topic);
    return 'retry';
  }

  private async handle(a: Active, m: PubSubMessage): Promise<DeliveryResult> {
    const prepared = await this.prepare(a, m);
    if (typeof prepared === 'string') return prepared;
    const { event, path, body } = prepared;
    const deliver = () => this.opts.channel.deliver({ pubsubName: a.ps.name, topic: m.topic, path, event, body });
    return this.settle(a, m, await this.withPolicy(a, deliver));
  }

  /** Runs one delivery inside the component's inbound policy: a 'retry' verdict is retried by it. */
  async withPolicy(a: Active, deliver: () => Promise<AppVerdict>): Promise<AppVerdict> {
    const policy = a.ps.inboundPolicy;
    if (!policy) return deliver();
    try {
      return await policy.run(async () => {
        const v = await deliver();
        if (v.outcome === 'retry') throw new RetryVerdict(v);
        return v;
      }, { isPermanent: () => false });
    } catch (err) {
      if (err instanceof RetryVerdict) return err.verdict;
      return { outcome: 'retry', reason: toCrossmeshError(err).message };
    }
  }

  /**
   * Publishes the message as it is to the route's dead-letter topic (same pubsub); true when it
   * went there. `counts`: a failed delivery moved (counted dead-lettered); a drop's copy is not.
   */
  private async deadLetter(a: Active, m: PubSubMessage, counts = true): Promise<boolean> {
    const dlq = a.route.deadLetterTopic;
    if (!dlq) return false;
    try {
      await a.ps.store.publish({ topic: dlq, data: m.data, contentType: m.contentType, metadata: {} });
    } catch (err) {
      log.warn(`${this.opts.label}: cannot send message ${m.id} of topic ${m.topic} to dead-letter topic ${dlq}: ${toCrossmeshError(err).message}`);
      return false;
    }
    if (counts) {
      log.warn(`${this.opts.label}: message ${m.id} of topic ${m.topic} sent to dead-letter topic ${dlq} after ${m.attempt} attempt(s)`);
      this.opts.metrics?.deadLettered(a.ps.name, m.topic);
    }
    return true;
  }

  get channel(): AppSubscriberChannel {
    return this.opts.channel;
  }
}

class RetryVerdict extends Error {
  constructor(readonly verdict: AppVerdict & { outcome: 'retry' }) {
    super(verdict.reason);
  }
}

/** Same broker subscription: pubsub, topic, bulk settings and raw payload unchanged. */
function sameShape(a: SubscriptionRoute, b: SubscriptionRoute): boolean {
  return a.pubsubName === b.pubsubName && a.topic === b.topic
    && JSON.stringify(a.bulkSubscribe ?? null) === JSON.stringify(b.bulkSubscribe ?? null)
    && (a.metadata.rawPayload ?? '') === (b.metadata.rawPayload ?? '');
}

interface Pending {
  m: PubSubMessage;
  resolve: (r: DeliveryResult) => void;
}

/**
 * Bulk subscribe: messages of one subscription collected until `max` are waiting or the oldest
 * waited `awaitMs`, then delivered to the app in one request per route path; each message gets
 * its own entry's verdict.
 */
class Batcher {
  private pending: Pending[] = [];
  private timer?: NodeJS.Timeout;

  constructor(private readonly s: Subscriber, private readonly a: Active, private readonly max: number, private readonly awaitMs: number) {}

  add(m: PubSubMessage): Promise<DeliveryResult> {
    return new Promise((resolve) => {
      this.pending.push({ m, resolve });
      if (this.pending.length >= this.max) this.flushNow();
      else this.timer ??= setTimeout(() => this.flushNow(), this.awaitMs);
    });
  }

  flushNow(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    if (batch.length > 0) void this.deliver(batch);
  }

  private async deliver(batch: Pending[]): Promise<void> {
    const byPath = new Map<string, { p: Pending; event: CloudEvent }[]>();
    await Promise.all(batch.map(async (p) => {
      try {
        const prepared = await this.s.prepare(this.a, p.m);
        if (typeof prepared === 'string') return p.resolve(prepared);
        const list = byPath.get(prepared.path) ?? [];
        list.push({ p, event: prepared.event });
        byPath.set(prepared.path, list);
      } catch (err) {
        log.warn(`bulk delivery of message ${p.m.id}: ${formatError(err)}`);
        p.resolve('retry');
      }
    }));
    for (const [path, items] of byPath) {
      const entries = items.map(({ p, event }) => ({ entryId: p.m.id, event, contentType: 'application/cloudevents+json' }));
      let verdicts: Map<string, AppVerdict>;
      try {
        verdicts = await this.s.channel.deliverBulk({ pubsubName: this.a.ps.name, topic: this.a.route.topic, path, entries });
      } catch (err) {
        verdicts = new Map(entries.map((e) => [e.entryId, { outcome: 'retry', reason: toCrossmeshError(err).message } as AppVerdict]));
      }
      await Promise.all(items.map(async ({ p }) => {
        const v = verdicts.get(p.m.id) ?? { outcome: 'retry', reason: 'response not received, RETRY required' };
        p.resolve(await this.s.settle(this.a, p.m, v).catch(() => 'retry' as const));
      }));
    }
  }
}
