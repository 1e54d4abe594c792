/**
 * pubsub.redis over Redis Streams (ioredis), as Dapr's component (components-contrib
 * pubsub/redis): a topic is a stream; a consumer group per Dapr consumer group (default the app
 * id); each sidecar reads as its own consumer.
 *
 *  - publish: XADD topic [MAXLEN ~ maxLenApprox] * data <bytes> contentType <type>
 *    [expiresAt <ms>]; resolved once Redis answered. The offline queue is off: while Redis is
 *    away a publish fails at once with CM_ERR_STORE_UNAVAILABLE naming the address, and nothing
 *    was stored.
 *  - subscribe: XGROUP CREATE topic group $ MKSTREAM (a new group reads new messages only;
 *    BUSYGROUP = it exists), then a loop of XREADGROUP ... BLOCK on a connection of its own,
 *    at most `concurrency` messages in the handler at once.
 *  - answers: success / drop → XACK. retry → the entry stays pending; after redeliverInterval
 *    this consumer XCLAIMs it back (its idle time reset, the delivery count bumped) and handles
 *    it again.
 *  - reclaim: every redeliverInterval, XAUTOCLAIM takes entries of the group idle longer than
 *    processingTimeout — those of a consumer that died or hangs — and handles them here.
 *  - NOGROUP (the stream was deleted, Redis restarted empty): the group is created again.
 *  - expired entries (expiresAt passed) are acknowledged without delivery.
 *
 * Metadata (Dapr's names): redisHost, redisUsername, redisPassword, redisDB, enableTLS,
 * dialTimeout, processingTimeout (default 60s), redeliverInterval (default 60s; 0 = no
 * reclaim/retry loop), concurrency (default 10), queueDepth (entries read per XREADGROUP,
 * default 100), maxLenApprox, ttlInSeconds.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { CrossmeshError } from '../errors.js';
import { log } from '../util/log.js';
import { MetadataReader } from '../state/metadata.js';
import { parseRedisHost } from '../state/redis.js';
import { messageTtlSeconds } from './ttl.js';
import type { DeliveryResult, PublishRequest, PubSub, PubSubConfig, PubSubFeatures, PubSubMessage, SubscribeOptions, TopicSubscription } from './types.js';

type Fields = Buffer[];
type StreamEntry = [Buffer, Fields];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class RedisPubSub implements PubSub {
  readonly features: PubSubFeatures = { durable: true, sharedGroups: true, ttl: true };
  readonly address: string;
  private readonly opts: RedisOptions;
  private readonly client: Redis;
  private readonly processingTimeoutMs: number;
  private readonly redeliverMs: number;
  private readonly concurrency: number;
  private readonly queueDepth: number;
  private readonly maxLen: number | undefined;
  private readonly defaultTtl: number | undefined;
  private readonly subs = new Set<RedisSubscription>();
  private initialised = false;
  closing = false;
  private up = false;
  private lastError = '';

  constructor(private readonly config: PubSubConfig) {
    const md = new MetadataReader(config, 'pubsub');
    let hp: { host: string; port: number };
    try {
      hp = parseRedisHost(md.string('redisHost'));
    } catch (err) {
      throw new CrossmeshError('CM_ERR_CONFIG', `pubsub ${config.name}: ${(err as Error).message}`, { cause: err });
    }
    this.address = `${hp.host}:${hp.port}`;
    this.processingTimeoutMs = md.durationMs('processingTimeout') ?? 60_000;
    this.redeliverMs = md.durationMs('redeliverInterval') ?? 60_000;
    this.concurrency = md.int('concurrency', 1) ?? 10;
    this.queueDepth = md.int('queueDepth', 1) ?? 100;
    this.maxLen = md.int('maxLenApprox', 1);
    this.defaultTtl = md.defaultTtlSeconds();
    const tls = md.bool('enableTLS') ?? false;
    this.opts = {
      host: hp.host,
      port: hp.port,
      username: md.string('redisUsername'),
      password: md.string('redisPassword'),
      db: md.int('redisDB', 0) ?? 0,
      ...(tls ? { tls: { servername: hp.host } } : {}),
      connectTimeout: md.durationMs('dialTimeout') ?? 5_000,
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => (this.initialised && !this.closing ? 200 : null),
    };
    this.client = new Redis(this.opts);
    this.client.on('error', (err: Error) => {
      this.lastError = err.message;
    });
    this.client.on('ready', () => {
      if (!this.up && this.initialised) log.info(`pubsub ${config.name}: redis at ${this.address} is back`);
      this.up = true;
    });
    this.client.on('close', () => {
      if (this.up && this.initialised && !this.closing) log.warn(`pubsub ${config.name}: lost connection to redis at ${this.address}${this.lastError ? ` (${this.lastError})` : ''}; reconnecting in the background`);
      this.up = false;
    });
  }

  get name(): string {
    return this.config.name;
  }

  unavailable(what: string, err: unknown): CrossmeshError {
    let msg = (err as Error)?.message || this.lastError || 'not connected';
    // ioredis's words for "no connection right now" say nothing to a user.
    if (/max retries per request|Stream isn't writeable|Connection is closed|enableOfflineQueue/i.test(msg)) msg = `not connected (${this.lastError || 'connection closed'})`;
    return new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', `pubsub ${this.config.name}: ${what} redis at ${this.address}: ${msg}`, { cause: err });
  }

  async init(): Promise<void> {
    try {
      await this.client.connect();
      await this.client.ping();
    } catch (err) {
      this.closing = true;
      this.client.disconnect();
      const msg = `${(err as Error).message} ${this.lastError}`;
      if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test(msg)) {
        throw new CrossmeshError('CM_ERR_CONFIG', `pubsub ${this.config.name}: authentication to redis at ${this.address} failed: ${this.lastError || (err as Error).message} (check redisUsername / redisPassword)`, { cause: err });
      }
      throw this.unavailable('cannot reach', err);
    }
    this.initialised = true;
    this.up = true;
  }

  /** A connection of its own for a subscription's blocking reads (a blocked client serves nothing else). */
  newBlockingClient(): Redis {
    // A read lost with its connection is sent again (an XREADGROUP '>' whose answer was lost leaves
    // its entries pending for us: the reclaim loop hands them out); a read that hangs on a dead
    // connection errs after commandTimeout and the loop reads again.
    const c = new Redis({
      ...this.opts, lazyConnect: false, enableOfflineQueue: true, autoResendUnfulfilledCommands: true, maxRetriesPerRequest: null,
      commandTimeout: 5_000, retryStrategy: () => (this.closing ? null : 200),
    });
    c.on('error', () => undefined);
    return c;
  }

  get command(): Redis {
    return this.client;
  }

  private entryArgs(req: PublishRequest): (string | Buffer | number)[] {
    const args: (string | Buffer | number)[] = [req.topic];
    if (this.maxLen !== undefined) args.push('MAXLEN', '~', this.maxLen);
    args.push('*', 'data', req.data, 'contentType', req.contentType);
    const ttl = messageTtlSeconds(req.metadata, this.defaultTtl);
    if (ttl !== undefined) args.push('expiresAt', Date.now() + ttl * 1000);
    return args;
  }

  async publish(req: PublishRequest): Promise<void> {
    const args = this.entryArgs(req);
    try {
      await this.client.call('XADD', ...args);
    } catch (err) {
      throw this.unavailable('cannot publish to', err);
    }
  }

  async publishBulk(reqs: PublishRequest[]): Promise<void> {
    // One round trip; all-or-nothing is not promised by the contract, order is.
    const pipe = this.client.multi();
    for (const r of reqs) pipe.call('XADD', ...this.entryArgs(r));
    let res: [Error | null, unknown][] | null;
    try {
      res = await pipe.exec();
    } catch (err) {
      throw this.unavailable('cannot publish to', err);
    }
    const failed = (res ?? []).find(([e]) => e);
    if (!res || failed) throw this.unavailable('cannot publish to', failed?.[0] ?? new Error('the transaction was discarded'));
  }

  async ensureGroup(topic: string, group: string): Promise<void> {
    try {
      await this.client.call('XGROUP', 'CREATE', topic, group, '$', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw this.unavailable('cannot create the consumer group on', err);
    }
  }

  async subscribe(opts: SubscribeOptions): Promise<TopicSubscription> {
    await this.ensureGroup(opts.topic, opts.group);
    const sub = new RedisSubscription(this, opts, { max: opts.maxConcurrency ?? this.concurrency, queueDepth: this.queueDepth, processingTimeoutMs: this.processingTimeoutMs, redeliverMs: this.redeliverMs });
    this.subs.add(sub);
    sub.start();
    return {
      close: async () => {
        this.subs.delete(sub);
        await sub.close();
      },
    };
  }

  async close(): Promise<void> {
    if (this.closing && !this.initialised) return;
    await Promise.all([...this.subs].map((s) => s.close()));
    this.subs.clear();
    this.closing = true;
    this.client.disconnect();
  }
}

function field(fields: Fields, name: string): Buffer | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i].toString() === name) return fields[i + 1];
  return undefined;
}

class RedisSubscription {
  private closed = false;
  private inFlight = 0;
  private slot?: () => void;
  private idle: Array<() => void> = [];
  private reader?: Redis;
  private loop?: Promise<void>;
  private reclaimTimer?: NodeJS.Timeout;
  private readonly retries = new Set<NodeJS.Timeout>();
  private readonly attempts = new Map<string, number>();

  constructor(private readonly ps: RedisPubSub, private readonly opts: SubscribeOptions, private readonly cfg: { max: number; queueDepth: number; processingTimeoutMs: number; redeliverMs: number }) {}

  start(): void {
    this.reader = this.ps.newBlockingClient();
    this.loop = this.readLoop();
    if (this.cfg.redeliverMs > 0) {
      this.reclaimTimer = setInterval(() => void this.reclaim(), Math.min(this.cfg.redeliverMs, this.cfg.processingTimeoutMs));
      this.reclaimTimer.unref();
    }
  }

  private async waitForSlot(): Promise<void> {
    while (!this.closed && this.inFlight >= this.cfg.max) await new Promise<void>((r) => (this.slot = r));
  }

  private async readLoop(): Promise<void> {
    const { topic, group, consumer } = this.opts;
    let failures = 0;
    while (!this.closed) {
      await this.waitForSlot();
      if (this.closed) break;
      let res: [Buffer, StreamEntry[]][] | null;
      try {
        const count = Math.min(this.cfg.queueDepth, this.cfg.max - this.inFlight);
        res = (await this.reader!.callBuffer('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'BLOCK', 1000, 'STREAMS', topic, '>')) as [Buffer, StreamEntry[]][] | null;
        failures = 0;
      } catch (err) {
        if (this.closed) break;
        const msg = (err as Error).message;
        log.debug(`pubsub ${this.ps.name}: XREADGROUP on ${topic}: ${msg}`);
        if (/NOGROUP/.test(msg)) {
          // The stream or the group went away (deleted, Redis restarted without data): make it again.
          await this.ps.ensureGroup(topic, group).catch(() => undefined);
          continue;
        }
        if (failures++ === 0) log.warn(`pubsub ${this.ps.name}: reading topic ${topic} from redis at ${this.ps.address}: ${msg}; retrying`);
        await sleep(Math.min(2000, 100 * 2 ** Math.min(failures, 5)));
        continue;
      }
      for (const [, entries] of res ?? []) for (const [id, fields] of entries) this.handle(id.toString(), fields, 1);
    }
  }

  /** Takes over the group's entries idle longer than processingTimeout (their consumer died or hangs). */
  private async reclaim(): Promise<void> {
    if (this.closed || this.inFlight >= this.cfg.max) return;
    const { topic, group, consumer } = this.opts;
    try {
      const res = (await this.ps.command.callBuffer('XAUTOCLAIM', topic, group, consumer, this.cfg.processingTimeoutMs, '0-0', 'COUNT', this.cfg.max - this.inFlight)) as [Buffer, StreamEntry[], Buffer[]?];
      for (const entry of res?.[1] ?? []) {
        if (!entry || !entry[1]) continue;
        const id = entry[0].toString();
        this.handle(id, entry[1], (this.attempts.get(id) ?? 1) + 1);
      }
    } catch (err) {
      if (/NOGROUP/.test((err as Error).message)) await this.ps.ensureGroup(topic, group).catch(() => undefined);
    }
  }

  private handle(id: string, fields: Fields, attempt: number): void {
    const { topic, group } = this.opts;
    const expiresAt = field(fields, 'expiresAt');
    if (expiresAt && Number(expiresAt.toString()) <= Date.now()) {
      void this.ps.command.call('XACK', topic, group, id).catch(() => undefined);
      return;
    }
    this.inFlight++;
    this.attempts.set(id, attempt);
    const msg: PubSubMessage = { id, topic, data: field(fields, 'data') ?? Buffer.alloc(0), contentType: field(fields, 'contentType')?.toString() ?? 'application/octet-stream', attempt };
    let p: Promise<DeliveryResult>;
    try {
      p = Promise.resolve(this.opts.handler(msg));
    } catch (err) {
      p = Promise.reject(err);
    }
    void p.then((r) => r, () => 'retry' as const).then((r) => this.settle(id, attempt, r));
  }

  private async settle(id: string, attempt: number, r: DeliveryResult): Promise<void> {
    const { topic, group, consumer } = this.opts;
    if (r === 'retry') {
      if (!this.closed && this.cfg.redeliverMs > 0) {
        // Back to this consumer after redeliverInterval (XCLAIM resets its idle time, so no one else takes it meanwhile).
        const t = setTimeout(() => {
          this.retries.delete(t);
          if (this.closed) return;
          this.ps.command.callBuffer('XCLAIM', topic, group, consumer, 0, id)
            .then((res) => {
              const entry = (res as StreamEntry[] | null)?.[0];
              if (entry?.[1]) this.handle(id, entry[1], attempt + 1);
            })
            .catch(() => undefined); // Left pending: the reclaim loop brings it back.
        }, this.cfg.redeliverMs);
        t.unref();
        this.retries.add(t);
      }
    } else {
      this.attempts.delete(id);
      // Not acknowledged when Redis is away: the entry stays pending and comes back (at least once).
      await this.ps.command.call('XACK', topic, group, id).catch((err) => log.warn(`${this.ps.unavailable(`cannot acknowledge ${id} of ${topic} on`, err).message}; it will be redelivered`));
    }
    this.inFlight--;
    const s = this.slot;
    this.slot = undefined;
    s?.();
    if (this.inFlight === 0) for (const f of this.idle.splice(0)) f();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reclaimTimer) clearInterval(this.reclaimTimer);
    for (const t of this.retries) clearTimeout(t);
    this.retries.clear();
    const s = this.slot;
    this.slot = undefined;
    s?.();
    this.reader?.disconnect();
    await this.loop?.catch(() => undefined);
    if (this.inFlight > 0) {
      // A hung handler: its entry is pending and others reclaim it after processingTimeout.
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.cfg.processingTimeoutMs);
        this.idle.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}
