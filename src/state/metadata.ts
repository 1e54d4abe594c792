/**
 * Readers for Component metadata (all values arrive as strings). A bad value is a CM_ERR_CONFIG
 * naming the store and the field, raised when the store is created, not on first use.
 */
import { parseGoDuration } from '../api/index.js';
import type { StoreConfig } from './types.js';
import { configError } from './errors.js';

export class MetadataReader {
  /** `kind` names the component in errors: "state store", "lock store", "pubsub". */
  constructor(
    private readonly config: Pick<StoreConfig, 'name' | 'metadata'>,
    private readonly kind = 'state store',
  ) {}

  string(name: string): string | undefined {
    const v = this.config.metadata[name];
    return v === undefined || v === '' ? undefined : v;
  }

  int(name: string, min: number): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (!/^-?\d+$/.test(v.trim()) || Number(v) < min) throw this.bad(name, v, `an integer >= ${min}`);
    return Number(v);
  }

  bool(name: string): boolean | undefined {
    const v = this.string(name)?.toLowerCase();
    if (v === undefined) return undefined;
    // Go's strconv.ParseBool spellings, since Dapr parses these with it.
    if (['true', '1', 't', 'yes'].includes(v)) return true;
    if (['false', '0', 'f', 'no'].includes(v)) return false;
    throw this.bad(name, v, '"true" or "false"');
  }

  /** A Go duration (`20s`, `500ms`) in ms; a bare number is taken as seconds, as Dapr's metadata decoder does. */
  durationMs(name: string): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (/^\d+$/.test(v)) return Number(v) * 1000;
    let ms: number;
    try {
      ms = parseGoDuration(v);
    } catch (err) {
      throw this.bad(name, v, 'a duration like "5s" or "500ms"', err);
    }
    if (ms < 0) throw this.bad(name, v, 'a duration like "5s" or "500ms" (not negative)');
    return ms;
  }

  /** Component-wide default TTL (`ttlInSeconds`); -1 / absent = none. */
  defaultTtlSeconds(): number | undefined {
    const ttl = this.int('ttlInSeconds', -1);
    return ttl !== undefined && ttl > 0 ? ttl : undefined;
  }

  private bad(name: string, value: string, expected: string, cause?: unknown) {
    return configError(this.config.name, `metadata ${name}=${JSON.stringify(value)} is invalid: expected ${expected}`, cause, this.kind);
  }
}
