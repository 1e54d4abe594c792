/**
 * pubsub.in-memory: topics inside the sidecar process (Dapr's in-memory pub/sub, for development
 * and tests). Nothing survives the process and no other process sees the messages
 * (features.durable and sharedGroups false), but the delivery rules are the contract's:
 *
 *  - a group gets the messages published after it first subscribed; its consumers take turns;
 *  - 'retry' (or a rejected handler) puts the message back, due again after redeliverInterval;
 *  - a message whose handler has not answered within processingTimeout is due again too (to any
 *    consumer of the group); the late answer of the first handler is then ignored;
 *  - metadata.ttlInSeconds (or the component's ttlInSeconds): expired messages are never delivered.
 *
 * Metadata: redeliverInterval (default 1s here: nothing is lost by retrying soon in one
 * process), processingTimeout (default 60s, Dapr redis's), ttlInSeconds.
 */
import { randomUUID } from 'node:crypto';
import { CrossmeshError } from '../errors.js';
import { MetadataReader } from '../state/metadata.js';
import { messageTtlSeconds } from './ttl.js';
import type { DeliveryResult, PublishRequest, PubSub, PubSubConfig, PubSubFeatures, SubscribeOptions, TopicSubscription } from './types.js';

interface Entry {
  id: string;
  req: PublishRequest;
  expiresAt?: number;
  attempt: number;
  dueAt: number;
  /** The consumer whose lease on it expired: another one gets it first. */
  avoid?: Consumer;
  /** The delivery in progress (its lease); undefined when the entry waits. */
  lease?: { consumer: Consumer; until: number; token: number };
}

interface Consumer {
  name: string;
  opts: SubscribeOptions;
  inFlight: number;
  closed: boolean;
  idle: Array<() => void>;
}

class Group {
  readonly entries: Entry[] = [];
  readonly consumers: Consumer[] = [];
  private next = 0;
  private timer?: NodeJS.Timeout;
  private timerAt = Infinity;
  private tokens = 0;

  constructor(private readonly owner: MemoryPubSub) {}

  add(e: Entry): void {
    this.entries.push(e);
    this.pump();
  }

  /** Hands due entries to consumers with room, in publish order, consumers in turn. */
  pump(): void {
    if (this.owner.closed) return;
    const now = Date.now();
    let wake = Infinity;
    for (let i = 0; i < this.entries.length; i++) {
      const e = this.entries[i];
      if (e.expiresAt !== undefined && e.expiresAt <= now && !e.lease) {
        this.entries.splice(i--, 1);
        continue;
      }
      if (e.lease) {
        if (e.lease.until > now) {
          wake = Math.min(wake, e.lease.until);
          continue;
        }
        // The handler did not answer in time: the message is due again, for any consumer.
        const held = e.lease.consumer;
        held.inFlight--;
        if (held.inFlight === 0) for (const f of held.idle.splice(0)) f();
        e.lease = undefined;
        e.attempt++;
        e.avoid = held;
      }
      if (e.dueAt > now) {
        wake = Math.min(wake, e.dueAt);
        continue;
      }
      const c = this.pick(e.avoid);
      if (!c) break;
      e.avoid = undefined;
      this.deliver(c, e, now);
    }
    this.arm(wake);
  }

  /** The next consumer with room, in turn; `avoid` (the one that let the message time out) only when it is the only one. */
  private pick(avoid?: Consumer): Consumer | undefined {
    const n = this.consumers.length;
    for (let k = 0; k < n; k++) {
      const c = this.consumers[(this.next + k) % n];
      if (c === avoid && n > 1) continue;
      if (!c.closed && c.inFlight < (c.opts.maxConcurrency ?? 16)) {
        this.next = (this.next + k + 1) % n;
        return c;
      }
    }
    return undefined;
  }

  private deliver(c: Consumer, e: Entry, now: number): void {
    const token = ++this.tokens;
    e.lease = { consumer: c, until: now + this.owner.processingTimeoutMs, token };
    c.inFlight++;
    const msg = { id: e.id, topic: e.req.topic, data: e.req.data, contentType: e.req.contentType, attempt: e.attempt };
    let answer: Promise<DeliveryResult>;
    try {
      answer = Promise.resolve(c.opts.handler(msg));
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then((r) => r, () => 'retry' as const).then((r) => this.settle(c, e, token, r));
  }

  private settle(c: Consumer, e: Entry, token: number, r: DeliveryResult): void {
    if (e.lease?.token === token) {
      c.inFlight--;
      e.lease = undefined;
      if (r === 'retry') {
        e.attempt++;
        e.dueAt = Date.now() + this.owner.redeliverMs;
      } else {
        const i = this.entries.indexOf(e);
        if (i >= 0) this.entries.splice(i, 1);
      }
    }
    // (A late answer after the lease expired counts for nothing: the message went out again.)
    if (c.inFlight === 0) for (const f of c.idle.splice(0)) f();
    this.pump();
  }

  private arm(at: number): void {
    if (at === Infinity || at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.pump();
    }, Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}

export class MemoryPubSub implements PubSub {
  readonly features: PubSubFeatures = { durable: false, sharedGroups: false, ttl: true };
  readonly redeliverMs: number;
  readonly processingTimeoutMs: number;
  private readonly defaultTtl: number | undefined;
  /** topic → group → state. */
  private readonly topics = new Map<string, Map<string, Group>>();
  closed = false;

  constructor(private readonly config: PubSubConfig) {
    const md = new MetadataReader(config, 'pubsub');
    this.redeliverMs = md.durationMs('redeliverInterval') ?? 1000;
    this.processingTimeoutMs = md.durationMs('processingTimeout') ?? 60_000;
    this.defaultTtl = md.defaultTtlSeconds();
  }

  async init(): Promise<void> {}

  async publish(req: PublishRequest): Promise<void> {
    if (this.closed) throw new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', `pubsub ${this.config.name} is closed`);
    const ttl = messageTtlSeconds(req.metadata, this.defaultTtl);
    const now = Date.now();
    const id = randomUUID();
    for (const g of this.topics.get(req.topic)?.values() ?? []) {
      g.add({ id, req, attempt: 1, dueAt: now, ...(ttl !== undefined ? { expiresAt: now + ttl * 1000 } : {}) });
    }
  }

  async publishBulk(reqs: PublishRequest[]): Promise<void> {
    for (const r of reqs) await this.publish(r);
  }

  async subscribe(opts: SubscribeOptions): Promise<TopicSubscription> {
    if (this.closed) throw new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', `pubsub ${this.config.name} is closed`);
    let groups = this.topics.get(opts.topic);
    if (!groups) this.topics.set(opts.topic, (groups = new Map()));
    let g = groups.get(opts.group);
    if (!g) groups.set(opts.group, (g = new Group(this)));
    const group = g;
    const c: Consumer = { name: opts.consumer, opts, inFlight: 0, closed: false, idle: [] };
    group.consumers.push(c);
    group.pump();
    return {
      close: async () => {
        if (c.closed) return;
        c.closed = true;
        const i = group.consumers.indexOf(c);
        if (i >= 0) group.consumers.splice(i, 1);
        if (c.inFlight > 0) await new Promise<void>((r) => c.idle.push(r));
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const groups of this.topics.values()) for (const g of groups.values()) g.stop();
  }
}
