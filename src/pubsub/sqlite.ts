/**
 * pubsub.sqlite: crossmesh's embedded, durable broker — no server to install. One SQLite file
 * (better-sqlite3, WAL) shared by every sidecar process on the host, like state.sqlite: the
 * instances of one app id in several clusters on this host form ONE consumer group through it.
 *
 * Tables:
 *   messages(seq, topic, data, content_type, published_at, expires_at)   append-only log
 *   groups(topic, grp, cursor)       a group gets the messages after `cursor` (set to the
 *                                    topic's last seq when the group is first seen: new
 *                                    messages only, as Redis's XGROUP CREATE ... $)
 *   deliveries(grp, topic, seq, owner, lease_until, attempts, due_at)
 *                                    one row per message a group has not acknowledged yet
 *
 * A consumer claims due messages in ONE write transaction (BEGIN IMMEDIATE): first the group's
 * new messages become delivery rows (cursor advanced), then up to N rows that are due and not
 * leased (or whose lease expired: their consumer died or hung) get owner = this consumer and
 * lease_until = now + processingTimeout. 'success'/'drop' delete the row; 'retry' clears the
 * owner and makes it due after redeliverInterval. Every state change is one statement whose
 * WHERE clause names the owner, so a late answer of a consumer whose lease was taken over
 * changes nothing. Acknowledgements are batched per tick (one transaction for many).
 *
 * Wake-up: a publish in this process wakes its subscriptions at once; other processes' writes
 * are noticed through fs.watch on the database's -wal file, with a poll (pollInterval, default
 * 250 ms) as the fallback that also brings back due retries and expired leases. A poll first
 * reads whether there is work before it takes the write lock.
 *
 * Metadata: connectionString (default `<dataDir>/<name>-pubsub.db`; relative paths resolve in
 * the data dir), processingTimeout (default 30s), redeliverInterval (default 5s), pollInterval
 * (250ms), ttlInSeconds (component default), retentionPeriod (default 24h: messages no group
 * will read are deleted after it; acknowledged ones are deleted at once), busyTimeout (5s).
 * Durability: a publish resolves after its commit (WAL, synchronous=NORMAL: survives a crash
 * of any process; not a power loss before the next checkpoint).
 */
import { mkdirSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import Database from 'better-sqlite3';
import { CrossmeshError } from '../errors.js';
import { log } from '../util/log.js';
import { MetadataReader } from '../state/metadata.js';
import { sqliteFile } from '../state/sqlite.js';
import { messageTtlSeconds } from './ttl.js';
import type { DeliveryResult, PublishRequest, PubSub, PubSubConfig, PubSubFeatures, PubSubMessage, SubscribeOptions, TopicSubscription } from './types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  topic TEXT NOT NULL,
  data BLOB NOT NULL,
  content_type TEXT NOT NULL,
  published_at INTEGER NOT NULL,
  expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS messages_topic_seq ON messages(topic, seq);
CREATE TABLE IF NOT EXISTS groups (
  topic TEXT NOT NULL,
  grp TEXT NOT NULL,
  cursor INTEGER NOT NULL,
  PRIMARY KEY (topic, grp)
);
CREATE TABLE IF NOT EXISTS deliveries (
  grp TEXT NOT NULL,
  topic TEXT NOT NULL,
  seq INTEGER NOT NULL,
  owner TEXT,
  lease_until INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  due_at INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (grp, topic, seq)
);
`;

/** Sidecars of this process on the same file: a publish wakes them without waiting for fs.watch. */
const LOCAL = new Map<string, Set<SqlitePubSub>>();

interface Sub {
  opts: SubscribeOptions;
  inFlight: number;
  closed: boolean;
  pumping: boolean;
  again: boolean;
  idle: Array<() => void>;
}

type Ack = { sub: Sub; seq: number; result: DeliveryResult };

export class SqlitePubSub implements PubSub {
  readonly features: PubSubFeatures = { durable: true, sharedGroups: true, ttl: true };
  readonly file: string;
  private db?: Database.Database;
  private readonly processingTimeoutMs: number;
  private readonly redeliverMs: number;
  private readonly pollMs: number;
  private readonly retentionMs: number;
  private readonly busyMs: number;
  private readonly defaultTtl: number | undefined;
  private readonly subs = new Set<Sub>();
  private acks: Ack[] = [];
  private ackScheduled = false;
  private watcher?: FSWatcher;
  private pollTimer?: NodeJS.Timeout;
  private cleanupTimer?: NodeJS.Timeout;
  private closed = false;
  private stmts!: ReturnType<SqlitePubSub['prepare']>;

  constructor(private readonly config: PubSubConfig) {
    const md = new MetadataReader(config, 'pubsub');
    this.file = sqliteFile(md.string('connectionString') ?? `${config.name}-pubsub.db`, config.dataDir);
    if (this.file === ':memory:') throw new CrossmeshError('CM_ERR_CONFIG', `pubsub ${config.name}: metadata connectionString=":memory:" cannot be shared; give a file path (default ${config.name}-pubsub.db in the data dir)`);
    this.processingTimeoutMs = md.durationMs('processingTimeout') ?? 30_000;
    this.redeliverMs = md.durationMs('redeliverInterval') ?? 5_000;
    this.pollMs = Math.max(10, md.durationMs('pollInterval') ?? 250);
    this.retentionMs = md.durationMs('retentionPeriod') ?? 24 * 3_600_000;
    this.busyMs = md.durationMs('busyTimeout') ?? 5_000;
    this.defaultTtl = md.defaultTtlSeconds();
    if (this.processingTimeoutMs <= 0) throw new CrossmeshError('CM_ERR_CONFIG', `pubsub ${config.name}: metadata processingTimeout must be above 0 (a lease that never expires would strand a dead consumer's messages)`);
  }

  private unavailable(what: string, err: unknown): CrossmeshError {
    return new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', `pubsub ${this.config.name}: ${what} ${this.file}: ${(err as Error).message}`, { cause: err });
  }

  async init(): Promise<void> {
    try {
      mkdirSync(dirname(this.file), { recursive: true });
      const db = new Database(this.file, { timeout: this.busyMs });
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec(SCHEMA);
      this.db = db;
      this.stmts = this.prepare(db);
    } catch (err) {
      this.db?.close();
      this.db = undefined;
      throw this.unavailable('cannot open', err);
    }
    let set = LOCAL.get(this.file);
    if (!set) LOCAL.set(this.file, (set = new Set()));
    set.add(this);
    try {
      // The -wal file changes on every commit of any process: a cheap cross-process signal.
      const wal = `${basename(this.file)}-wal`;
      this.watcher = watch(dirname(this.file), (_e, name) => {
        if (name === wal) this.wakeAll();
      });
      this.watcher.unref();
      this.watcher.on('error', () => undefined);
    } catch {
      // No fs.watch here (some filesystems): the poll alone wakes subscriptions.
    }
    this.cleanupTimer = setInterval(() => this.cleanup(), Math.min(60_000, Math.max(1000, this.retentionMs / 10)));
    this.cleanupTimer.unref();
  }

  private prepare(db: Database.Database) {
    return {
      publish: db.prepare('INSERT INTO messages (topic, data, content_type, published_at, expires_at) VALUES (?, ?, ?, ?, ?)'),
      lastSeq: db.prepare<[string], { s: number | null }>('SELECT max(seq) AS s FROM messages WHERE topic = ?'),
      ensureGroup: db.prepare('INSERT OR IGNORE INTO groups (topic, grp, cursor) VALUES (?, ?, ?)'),
      cursor: db.prepare<[string, string], { cursor: number }>('SELECT cursor FROM groups WHERE topic = ? AND grp = ?'),
      materialize: db.prepare('INSERT OR IGNORE INTO deliveries (grp, topic, seq, due_at) SELECT ?, topic, seq, 0 FROM messages WHERE topic = ? AND seq > ? AND seq <= ?'),
      advance: db.prepare('UPDATE groups SET cursor = ? WHERE topic = ? AND grp = ?'),
      hasWork: db.prepare<[{ grp: string; topic: string; now: number }], { n: number }>(
        `SELECT EXISTS (SELECT 1 FROM deliveries WHERE grp = @grp AND topic = @topic AND due_at <= @now AND (owner IS NULL OR lease_until <= @now))
             OR EXISTS (SELECT 1 FROM messages WHERE topic = @topic AND seq > coalesce((SELECT cursor FROM groups WHERE topic = @topic AND grp = @grp), 0)) AS n`,
      ),
      due: db.prepare<[string, string, number, number, number], { seq: number; attempts: number }>(
        'SELECT seq, attempts FROM deliveries WHERE grp = ? AND topic = ? AND due_at <= ? AND (owner IS NULL OR lease_until <= ?) ORDER BY seq LIMIT ?',
      ),
      claim: db.prepare('UPDATE deliveries SET owner = ?, lease_until = ?, attempts = attempts + 1 WHERE grp = ? AND topic = ? AND seq = ?'),
      message: db.prepare<[number], { data: Buffer; content_type: string; expires_at: number | null }>('SELECT data, content_type, expires_at FROM messages WHERE seq = ?'),
      done: db.prepare('DELETE FROM deliveries WHERE grp = ? AND topic = ? AND seq = ? AND owner = ?'),
      drop: db.prepare('DELETE FROM deliveries WHERE grp = ? AND topic = ? AND seq = ?'),
      retry: db.prepare('UPDATE deliveries SET owner = NULL, lease_until = 0, due_at = ? WHERE grp = ? AND topic = ? AND seq = ? AND owner = ?'),
      sweep: db.prepare(`DELETE FROM messages WHERE seq <= coalesce((SELECT min(cursor) FROM groups g WHERE g.topic = messages.topic), -1)
                           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.topic = messages.topic AND d.seq = messages.seq)`),
      retain: db.prepare('DELETE FROM messages WHERE published_at < ? AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.topic = messages.topic AND d.seq = messages.seq)'),
      expire: db.prepare('DELETE FROM deliveries WHERE seq IN (SELECT seq FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ?) AND owner IS NULL'),
    };
  }

  private open(): Database.Database {
    if (!this.db || this.closed) throw new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', `pubsub ${this.config.name} is closed`);
    return this.db;
  }

  async publish(req: PublishRequest): Promise<void> {
    await this.publishBulk([req]);
  }

  async publishBulk(reqs: PublishRequest[]): Promise<void> {
    const db = this.open();
    const now = Date.now();
    const rows = reqs.map((r) => {
      const ttl = messageTtlSeconds(r.metadata, this.defaultTtl);
      return [r.topic, r.data, r.contentType, now, ttl !== undefined ? now + ttl * 1000 : null] as const;
    });
    try {
      db.transaction(() => {
        for (const row of rows) this.stmts.publish.run(...row);
      }).immediate();
    } catch (err) {
      throw this.unavailable('cannot write', err);
    }
    for (const p of LOCAL.get(this.file) ?? []) p.wakeAll();
  }

  async subscribe(opts: SubscribeOptions): Promise<TopicSubscription> {
    const db = this.open();
    try {
      db.transaction(() => {
        const last = this.stmts.lastSeq.get(opts.topic)?.s ?? 0;
        this.stmts.ensureGroup.run(opts.topic, opts.group, last);
      }).immediate();
    } catch (err) {
      throw this.unavailable('cannot write', err);
    }
    const sub: Sub = { opts, inFlight: 0, closed: false, pumping: false, again: false, idle: [] };
    this.subs.add(sub);
    this.ensurePoll();
    this.pump(sub);
    return {
      close: async () => {
        if (sub.closed) return;
        sub.closed = true;
        this.subs.delete(sub);
        await this.drained(sub);
        this.flushAcks();
      },
    };
  }

  /**
   * Resolves when the subscription's handlers answered, or after processingTimeout: by then
   * their leases expired and another consumer may have the messages (a hung handler must not
   * hold a sidecar's shutdown forever).
   */
  private drained(sub: Sub): Promise<void> {
    if (sub.inFlight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      // Not unref'd: a close in progress keeps the process alive until it is done.
      const t = setTimeout(resolve, this.processingTimeoutMs);
      sub.idle.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private ensurePoll(): void {
    if (this.pollTimer || this.closed) return;
    this.pollTimer = setInterval(() => this.wakeAll(), this.pollMs);
    this.pollTimer.unref();
  }

  wakeAll(): void {
    for (const s of this.subs) this.pump(s);
  }

  /** Claims what this subscription has room for and runs the handlers. */
  private pump(sub: Sub): void {
    if (sub.closed || this.closed || !this.db) return;
    if (sub.pumping) {
      sub.again = true;
      return;
    }
    const room = (sub.opts.maxConcurrency ?? 16) - sub.inFlight;
    if (room <= 0) return;
    sub.pumping = true;
    let claimed: PubSubMessage[] = [];
    const { topic, group, consumer } = sub.opts;
    try {
      const now = Date.now();
      // A read first: an idle poll never takes the write lock.
      if (this.stmts.hasWork.get({ grp: group, topic, now })?.n) {
        claimed = this.db.transaction(() => {
          const cur = this.stmts.cursor.get(topic, group)?.cursor ?? 0;
          const last = this.stmts.lastSeq.get(topic)?.s ?? 0;
          if (last > cur) {
            this.stmts.materialize.run(group, topic, cur, last);
            this.stmts.advance.run(last, topic, group);
          }
          const out: PubSubMessage[] = [];
          for (const d of this.stmts.due.all(group, topic, now, now, room)) {
            const m = this.stmts.message.get(d.seq);
            if (!m || (m.expires_at !== null && m.expires_at <= now)) {
              this.stmts.drop.run(group, topic, d.seq);
              continue;
            }
            this.stmts.claim.run(consumer, now + this.processingTimeoutMs, group, topic, d.seq);
            out.push({ id: String(d.seq), topic, data: m.data, contentType: m.content_type, attempt: d.attempts + 1 });
          }
          return out;
        }).immediate();
      }
    } catch (err) {
      log.warn(`pubsub ${this.config.name}: claiming messages of topic ${topic} from ${this.file}: ${(err as Error).message}; retrying`);
    } finally {
      sub.pumping = false;
    }
    for (const m of claimed) this.run(sub, m);
    if (sub.again) {
      sub.again = false;
      setImmediate(() => this.pump(sub));
    }
  }

  private run(sub: Sub, m: PubSubMessage): void {
    sub.inFlight++;
    let p: Promise<DeliveryResult>;
    try {
      p = Promise.resolve(sub.opts.handler(m));
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then((r) => r, () => 'retry' as const).then((result) => {
      this.acks.push({ sub, seq: Number(m.id), result });
      this.scheduleAcks();
    });
  }

  private scheduleAcks(): void {
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setImmediate(() => this.flushAcks());
  }

  /** Writes the answers of this tick in one transaction, then frees the handlers' room. */
  private flushAcks(): void {
    this.ackScheduled = false;
    const acks = this.acks;
    if (acks.length === 0) return;
    this.acks = [];
    if (this.db && !this.closed) {
      const now = Date.now();
      try {
        this.db.transaction(() => {
          for (const { sub, seq, result } of acks) {
            const { group, topic, consumer } = sub.opts;
            if (result === 'retry') this.stmts.retry.run(now + this.redeliverMs, group, topic, seq, consumer);
            else this.stmts.done.run(group, topic, seq, consumer);
          }
        }).immediate();
      } catch (err) {
        // Not acknowledged: the leases expire and the messages are delivered again (at least once).
        log.warn(`pubsub ${this.config.name}: acknowledging ${acks.length} message(s) in ${this.file}: ${(err as Error).message}; they will be redelivered`);
      }
    }
    const touched = new Set<Sub>();
    for (const a of acks) {
      a.sub.inFlight--;
      touched.add(a.sub);
    }
    for (const s of touched) {
      if (s.inFlight === 0) for (const f of s.idle.splice(0)) f();
      this.pump(s);
    }
  }

  private cleanup(): void {
    if (!this.db || this.closed) return;
    try {
      const now = Date.now();
      this.db.transaction(() => {
        this.stmts.expire.run(now);
        this.stmts.sweep.run();
        this.stmts.retain.run(now - this.retentionMs);
      }).immediate();
    } catch (err) {
      log.debug(`pubsub ${this.config.name}: cleanup of ${this.file}: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.subs].map((s) => {
      s.closed = true;
      return this.drained(s);
    }));
    this.flushAcks();
    this.closed = true;
    this.subs.clear();
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.cleanupTimer) clearInterval(this.cleanupTimer);
    this.watcher?.close();
    LOCAL.get(this.file)?.delete(this);
    if (LOCAL.get(this.file)?.size === 0) LOCAL.delete(this.file);
    this.db?.close();
    this.db = undefined;
  }
}
