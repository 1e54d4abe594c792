/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): a valid `traceparent` is passed on
 * unchanged (the proxy records no spans of its own); a missing or invalid one is replaced by a
 * new sampled one, `00-<32 hex trace id>-<16 hex parent id>-01`. Random bytes are drawn in
 * batches so a request costs no syscall.
 */
import { randomFillSync } from 'node:crypto';

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_PARENT = '0000000000000000';

const BATCH = 24 * 512;
const pool = Buffer.allocUnsafe(BATCH);
let offset = BATCH;

function randomHex(bytes: number): string {
  if (offset + bytes > BATCH) {
    randomFillSync(pool);
    offset = 0;
  }
  const s = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return s;
}

export function isValidTraceparent(v: string): boolean {
  if (v.length < 55 || !TRACEPARENT.test(v.slice(0, 55))) return false;
  // Version ff is invalid; version 00 must be exactly 55 chars; later versions may append fields.
  const version = v.slice(0, 2);
  if (version === 'ff' || (version === '00' && v.length !== 55)) return false;
  if (v.length > 55 && v.charCodeAt(55) !== 45) return false;
  return v.slice(3, 35) !== ZERO_TRACE && v.slice(36, 52) !== ZERO_PARENT;
}

export function newTraceparent(): string {
  let trace = randomHex(16);
  if (trace === ZERO_TRACE) trace = randomHex(16);
  let parent = randomHex(8);
  if (parent === ZERO_PARENT) parent = randomHex(8);
  return `00-${trace}-${parent}-01`;
}

/** The incoming traceparent when valid, else a new one. */
export function ensureTraceparent(v: string | undefined): string {
  return v !== undefined && isValidTraceparent(v) ? v : newTraceparent();
}
