/**
 * lock.redis, as components-contrib lock/redis (StandaloneRedisLock): TryLock is
 * `SET <key> <owner> NX EX <expiryInSeconds>`; Unlock runs the component's compare-and-delete
 * script (-1 → LOCK_DOES_NOT_EXIST, -2 → LOCK_BELONGS_TO_OTHERS, else SUCCESS). Like the
 * component it refuses `failover: true` and a Redis with connected replicas (a lock could be
 * lost on failover). Connection metadata as state.redis: redisHost, redisUsername,
 * redisPassword, redisDB, enableTLS, dialTimeout, readTimeout.
 */
import { Redis } from 'ioredis';
import { CrossmeshError } from '../errors.js';
import { MetadataReader } from '../state/metadata.js';
import { parseRedisHost } from '../state/redis.js';
import { UNLOCK_STATUS, type LockStore, type LockStoreConfig, type UnlockStatus } from './types.js';

/** components-contrib lock/redis unlockScript, verbatim. */
export const UNLOCK_LUA = 'local v = redis.call("get",KEYS[1]); if v==false then return -1 end; if v~=ARGV[1] then return -2 else return redis.call("del",KEYS[1]) end';

export class RedisLockStore implements LockStore {
  readonly address: string;
  private readonly client: Redis & { cmUnlock(key: string, owner: string): Promise<number> };
  private closing = false;
  private initialised = false;
  private lastError = '';

  constructor(private readonly config: LockStoreConfig) {
    const md = new MetadataReader(config, 'lock store');
    const fail = (msg: string, cause?: unknown) => new CrossmeshError('CM_ERR_CONFIG', `lock store ${config.name}: ${msg}`, { cause });
    if (!config.metadata.redisHost) throw fail('redisHost is empty (set metadata redisHost, e.g. "localhost:6379")');
    if (md.bool('failover')) throw fail('failover is not supported by lock.redis (as in Dapr: a lock could be lost in a failover); use a standalone Redis');
    let hp: { host: string; port: number };
    try {
      hp = parseRedisHost(config.metadata.redisHost);
    } catch (err) {
      throw fail((err as Error).message, err);
    }
    this.address = `${hp.host}:${hp.port}`;
    const tls = md.bool('enableTLS') ?? false;
    const readMs = md.durationMs('readTimeout');
    this.client = new Redis({
      host: hp.host,
      port: hp.port,
      username: md.string('redisUsername'),
      password: md.string('redisPassword'),
      db: md.int('redisDB', 0) ?? 0,
      ...(tls ? { tls: { servername: hp.host } } : {}),
      connectTimeout: md.durationMs('dialTimeout') ?? 5_000,
      ...(readMs !== undefined && readMs > 0 ? { commandTimeout: readMs } : {}),
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => (this.initialised && !this.closing ? Math.min(100 * 2 ** Math.min(times, 5), 2_000) : null),
    }) as Redis & { cmUnlock(key: string, owner: string): Promise<number> };
    this.client.defineCommand('cmUnlock', { numberOfKeys: 1, lua: UNLOCK_LUA });
    this.client.on('error', (err: Error) => {
      this.lastError = err.message;
    });
  }

  async init(): Promise<void> {
    try {
      await this.client.connect();
      await this.client.ping();
    } catch (err) {
      this.closing = true;
      this.client.disconnect();
      const msg = this.lastError || (err as Error).message;
      throw new CrossmeshError(/WRONGPASS|NOAUTH|AUTH/i.test(msg) ? 'CM_ERR_CONFIG' : 'CM_ERR_STORE_UNAVAILABLE', `lock store ${this.config.name}: error connecting to redis at ${this.address}: ${msg}`, { cause: err });
    }
    // No replicas (the component's check; a Redis that does not know INFO passes).
    const info = await this.client.info('replication').catch(() => '');
    const m = /connected_slaves:(\d+)/.exec(info);
    if (m && Number(m[1]) > 0) {
      await this.close();
      throw new CrossmeshError('CM_ERR_CONFIG', `lock store ${this.config.name}: redis at ${this.address} has ${m[1]} replica(s): replication is not supported by lock.redis (as in Dapr)`);
    }
    this.initialised = true;
  }

  private unavailable(err: unknown): CrossmeshError {
    return new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', `redis at ${this.address}: ${(err as Error).message || this.lastError}`, { cause: err });
  }

  async tryLock(key: string, owner: string, expiryInSeconds: number): Promise<boolean> {
    try {
      return (await this.client.set(key, owner, 'EX', expiryInSeconds, 'NX')) === 'OK';
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  async unlock(key: string, owner: string): Promise<UnlockStatus> {
    let i: number;
    try {
      i = Number(await this.client.cmUnlock(key, owner));
    } catch (err) {
      throw this.unavailable(err);
    }
    if (i >= 0) return UNLOCK_STATUS.SUCCESS;
    if (i === -1) return UNLOCK_STATUS.LOCK_DOES_NOT_EXIST;
    if (i === -2) return UNLOCK_STATUS.LOCK_BELONGS_TO_OTHERS;
    return UNLOCK_STATUS.INTERNAL_ERROR;
  }

  async close(): Promise<void> {
    if (this.closing && !this.initialised) return;
    this.closing = true;
    this.initialised = false;
    await this.client.quit().catch(() => this.client.disconnect());
  }
}
