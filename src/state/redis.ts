/**
 * state.redis (ioredis), Dapr's layout: a HASH {data, version} per key, ETag = version as a
 * decimal string ("1" on the first write, HINCRBY per write). Etag checks run inside Lua
 * scripts (redis-scripts.ts). Query is not supported (Dapr's needs RediSearch).
 *
 * Failure rules: nothing is reported as saved unless Redis acknowledged it. The offline queue is
 * off and in-flight commands are not resent after a reconnect, so a command fails at once with
 * CM_ERR_STORE_UNAVAILABLE naming the host while Redis is away; ioredis reconnects in the
 * background with backoff, and the store logs once per up/down change.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { CrossmeshError } from '../errors.js';
import { log } from '../util/log.js';
import { hasEtag } from './etag.js';
import { configError, etagInvalid, etagMismatch } from './errors.js';
import { MetadataReader } from './metadata.js';
import { DEL_LUA, GET_LUA, SET_LUA, TX_LUA } from './redis-scripts.js';
import { effectiveTtl } from './ttl.js';
import type { DeleteRequest, SetRequest, StateStore, StoreConfig, StoredValue, TransactionOperation } from './types.js';

type Arg = string | Buffer | number;
interface ScriptCommands {
  cmGetBuffer(numKeys: number, ...args: Arg[]): Promise<(Buffer | number | null)[]>;
  cmSet(...args: Arg[]): Promise<number>;
  cmDel(...args: Arg[]): Promise<number>;
  cmTx(numKeys: number, ...args: Arg[]): Promise<number>;
}

/** `host:port`, `host`, `[v6]:port` → host + port (Dapr's default is localhost:6379). */
export function parseRedisHost(value: string | undefined): { host: string; port: number } {
  const s = value ?? 'localhost:6379';
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(s);
  const port = Number(m?.[3] ?? 6379);
  if (!m || port < 1 || port > 65535) {
    throw new CrossmeshError('CM_ERR_CONFIG', `metadata redisHost=${JSON.stringify(s)} is not host:port; give e.g. "localhost:6379" or "[::1]:6379" (port 1-65535)`);
  }
  return { host: m[1] ?? m[2], port };
}

const RETRY_DELAYS_MS = [50, 100, 200, 400, 800];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class RedisStateStore implements StateStore {
  readonly features = { etag: true, transactional: true, ttl: true, query: false };
  /** host:port as configured, for messages. */
  readonly address: string;
  private readonly client: Redis & ScriptCommands;
  private readonly defaultTtl: number | undefined;
  private readonly maxRetries: number;
  private initialised = false;
  private closing = false;
  private up = false;
  private lastError = '';

  constructor(private readonly config: StoreConfig) {
    const md = new MetadataReader(config);
    let hp: { host: string; port: number };
    try {
      hp = parseRedisHost(md.string('redisHost'));
    } catch (err) {
      throw configError(config.name, (err as Error).message, err);
    }
    this.address = `${hp.host}:${hp.port}`;
    this.defaultTtl = md.defaultTtlSeconds();
    this.maxRetries = md.int('maxRetries', 0) ?? 3;
    const dialMs = md.durationMs('dialTimeout') ?? 5_000;
    const readMs = md.durationMs('readTimeout');
    const tls = md.bool('enableTLS') ?? false;
    const opts: RedisOptions = {
      host: hp.host,
      port: hp.port,
      username: md.string('redisUsername'),
      password: md.string('redisPassword'),
      db: md.int('redisDB', 0) ?? 0,
      ...(tls ? { tls: { servername: hp.host } } : {}),
      connectTimeout: dialMs,
      ...(readMs !== undefined && readMs > 0 ? { commandTimeout: readMs } : {}),
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: this.maxRetries,
      // Until init() succeeded, a failed connect is final (init reports it); afterwards keep
      // reconnecting in the background, backing off to 2 s.
      retryStrategy: (times) => (this.initialised && !this.closing ? Math.min(100 * 2 ** Math.min(times, 5), 2_000) : null),
    };
    this.client = new Redis(opts) as Redis & ScriptCommands;
    this.client.defineCommand('cmGet', { lua: GET_LUA });
    this.client.defineCommand('cmSet', { numberOfKeys: 1, lua: SET_LUA });
    this.client.defineCommand('cmDel', { numberOfKeys: 1, lua: DEL_LUA });
    this.client.defineCommand('cmTx', { lua: TX_LUA });
    this.client.on('error', (err: Error) => {
      this.lastError = err.message;
    });
    this.client.on('ready', () => {
      if (!this.up && this.initialised) log.info(`state store ${config.name}: redis at ${this.address} is back`);
      this.up = true;
    });
    this.client.on('close', () => {
      if (this.up && this.initialised && !this.closing) log.warn(`state store ${config.name}: lost connection to redis at ${this.address}${this.lastError ? ` (${this.lastError})` : ''}; reconnecting in the background`);
      this.up = false;
    });
  }

  async init(): Promise<void> {
    try {
      await this.client.connect();
      await this.client.ping();
    } catch (err) {
      this.closing = true;
      this.client.disconnect();
      const msg = (err as Error).message || this.lastError;
      if (/WRONGPASS|NOAUTH|invalid password|invalid username|AUTH/i.test(`${msg} ${this.lastError}`)) {
        throw configError(this.config.name, `authentication to redis at ${this.address} failed: ${this.lastError || msg} (check redisUsername / redisPassword)`, err);
      }
      throw new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', `state store ${this.config.name}: cannot reach redis at ${this.address}: ${this.lastError || msg}`, { cause: err });
    }
    this.initialised = true;
    this.up = true;
  }

  async get(key: string): Promise<StoredValue | undefined> {
    return (await this.bulkGet([key]))[0];
  }

  async bulkGet(keys: string[]): Promise<(StoredValue | undefined)[]> {
    if (keys.length === 0) return [];
    const flat = await this.call('get', true, () => this.client.cmGetBuffer(keys.length, ...keys));
    const now = Date.now();
    return keys.map((_, i) => {
      const [data, version, pttl] = [flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]];
      if (!Buffer.isBuffer(data) || !Buffer.isBuffer(version)) return undefined;
      const v: StoredValue = { data, etag: version.toString() };
      if (typeof pttl === 'number' && pttl > 0) v.expiresAt = now + pttl;
      return v;
    });
  }

  async set(req: SetRequest): Promise<void> {
    const a = this.args({ operation: 'upsert', ...req });
    await this.call('save', false, () => this.client.cmSet(req.key, a.data, a.etag, a.fw, a.ttl), req.key);
  }

  async delete(req: DeleteRequest): Promise<void> {
    const a = this.args({ operation: 'delete', ...req });
    await this.call('delete', false, () => this.client.cmDel(req.key, a.etag, a.fw), req.key);
  }

  async transact(ops: TransactionOperation[]): Promise<void> {
    if (ops.length === 0) return;
    const argv: Arg[] = [];
    for (const op of ops) {
      const a = this.args(op);
      argv.push(op.operation === 'upsert' ? 'u' : 'd', a.data, a.etag, a.fw, a.ttl);
    }
    await this.call('transaction', false, () => this.client.cmTx(ops.length, ...ops.map((o) => o.key), ...argv), undefined, ops);
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
        return;
      } catch {
        // fall through to a hard disconnect
      }
    }
    this.client.disconnect();
  }

  /** Script arguments for one op; checks the etag's format first (versions are integers). */
  private args(op: TransactionOperation): { data: Buffer | string; etag: string; fw: string; ttl: string } {
    if (hasEtag(op.etag) && !/^\d+$/.test(op.etag)) throw etagInvalid(op.key, op.etag, 'a decimal version like "3"');
    const ttl = op.operation === 'upsert' ? effectiveTtl(op.ttlSeconds, this.defaultTtl) : undefined;
    return {
      data: op.operation === 'upsert' ? op.data : '',
      etag: op.etag ?? '',
      fw: op.concurrency === 'first-write' ? '1' : '0',
      ttl: String(ttl ?? 0),
    };
  }

  /**
   * Runs one command, mapping errors. Reads are retried (idempotent); a write is retried only
   * when ioredis refused it before sending (not connected), never once it may have reached Redis.
   */
  private async call<T>(what: string, idempotent: boolean, fn: () => Promise<T>, key?: string, ops?: TransactionOperation[]): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const msg = (err as Error).message ?? String(err);
        // Redis prefixes script errors with "ERR " (7.x); match the marker wherever it is.
        const m = /CM_ETAG_(EXISTS|MISMATCH)(?: (\d+))?/.exec(msg);
        if (m) {
          const k = key ?? (m[2] && ops ? ops[Number(m[2]) - 1]?.key : undefined) ?? '?';
          throw m[1] === 'EXISTS' ? etagMismatch(k, 'first-write: key already exists (no etag given)') : etagMismatch(k);
        }
        const notSent = /enableOfflineQueue|Connection is closed/.test(msg) && this.client.status !== 'ready';
        if (attempt < this.maxRetries && !this.closing && (idempotent || /enableOfflineQueue/.test(msg))) {
          await sleep(RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)]);
          continue;
        }
        const detail = notSent ? `not connected${this.lastError ? ` (${this.lastError})` : ''}` : msg;
        const maybe = !idempotent && !/enableOfflineQueue/.test(msg) && /closed|timed out|ECONNRESET|EPIPE/i.test(msg) ? '; the write may or may not have been applied' : '';
        throw new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', `state store ${this.config.name}: redis at ${this.address}: ${what} failed: ${detail}${maybe}`, { cause: err });
      }
    }
  }
}
