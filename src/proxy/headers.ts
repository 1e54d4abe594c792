/**
 * Header hygiene for one proxy hop (RFC 9110 §7.6.1): hop-by-hop headers never cross a hop,
 * including any header named in `Connection`; X-Forwarded-* are appended/set; W3C trace
 * context is propagated or started. Works on the flat raw header list (name, value, ...) as
 * llhttp gives it and writes the upstream head directly, so duplicates and order survive and
 * nothing is parsed twice.
 */
import { CrossmeshError } from '../errors.js';
import { ensureTraceparent } from './trace.js';

/** Hop-by-hop request/response headers (lowercase). `expect` too: node answered 100-continue already. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'proxy-authorization',
  'proxy-authenticate',
  'expect',
]);

/** Names listed in a Connection header value (lowercase); undefined when none. */
export function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (!value) return undefined;
  // The common values name no header (an app's "keep-alive" on every response): no split.
  if (value.length <= 10) {
    const v = value.toLowerCase();
    if (v === 'keep-alive' || v === 'close') return undefined;
  }
  let set: Set<string> | undefined;
  for (const part of value.split(',')) {
    const t = part.trim().toLowerCase();
    if (t && t !== 'close' && t !== 'keep-alive') (set ??= new Set()).add(t);
  }
  return set;
}

export interface RequestHeaderInput {
  /** node's IncomingMessage.rawHeaders. */
  rawHeaders: string[];
  clientIp: string;
  /** 'http' or 'https': what the client used to reach this hop. */
  proto: string;
  /** Flat [name, value, ...] headers to set (they replace same-named incoming ones); names lowercase. */
  extra?: readonly string[];
  /** Incoming headers (lowercase names) not to pass upstream, e.g. `dapr-api-token`. */
  drop?: ReadonlySet<string>;
}

function includesName(flat: readonly string[], name: string): boolean {
  for (let i = 0; i < flat.length; i += 2) if (flat[i] === name) return true;
  return false;
}

/** Name lengths that may need a look (hop-by-hop, framing, forwarding and trace headers). */
const WATCH = new Uint8Array(64);
for (const n of [...HOP_BY_HOP, 'content-length', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'traceparent', 'tracestate', 'host']) WATCH[n.length] = 1;
const dropLengths = new WeakMap<ReadonlySet<string>, Uint8Array>();

function lengthsOf(drop: ReadonlySet<string>): Uint8Array {
  let m = dropLengths.get(drop);
  if (m === undefined) {
    m = new Uint8Array(256);
    for (const n of drop) if (n.length < 256) m[n.length] = 1;
    dropLengths.set(drop, m);
  }
  return m;
}

export interface RequestHeadInput extends RequestHeaderInput {
  method: string;
  /** Origin-form target sent upstream. */
  path: string;
  /** Host header to send when the request has none (HTTP/1.0 clients): a value, or the upstream's host and port (formatted only then). */
  defaultHost: string | { host: string; port: number };
  /** The body is chunked: the head says so (Content-Length is passed as received otherwise). */
  chunked: boolean;
}

/**
 * The upstream request head as one string (request line, headers, blank line), built in one
 * pass over the raw header list: incoming headers minus hop-by-hop ones (and those named in
 * Connection), `x-forwarded-for` appended with the client address, `x-forwarded-host`/`-proto`
 * set when absent, `traceparent` kept when valid or created (an invalid one is replaced and its
 * `tracestate` dropped), then `extra`, and the hop's own framing. Names keep their case and are
 * only lowercased when their length matches a header the hop must look at. Throws
 * CM_ERR_BAD_REQUEST for a request with both Content-Length and Transfer-Encoding (request
 * smuggling; llhttp refuses it too, this is the second line).
 */
export function buildRequestHead(input: RequestHeadInput): string {
  const raw = input.rawHeaders;
  const extra = input.extra;
  const drop = input.drop;
  const dropLen = drop !== undefined ? lengthsOf(drop) : undefined;
  let connection: string | undefined;
  let contentLength = false;
  let te = false;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    if (n.length === 10 && n.toLowerCase() === 'connection') connection = connection === undefined ? raw[i + 1] : `${connection},${raw[i + 1]}`;
    else if (n.length === 14 && n.toLowerCase() === 'content-length') contentLength = true;
    else if (n.length === 17 && n.toLowerCase() === 'transfer-encoding') te = true;
  }
  if (te && contentLength) throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'request has both Content-Length and Transfer-Encoding; send only one of them');
  const named = connectionTokens(connection);
  let head = `${input.method} ${input.path} HTTP/1.1\r\n`;
  let xff: string | undefined;
  let host = false;
  let xfHost = false;
  let xfProto = false;
  let traceparent: string | undefined;
  let tracestate: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i];
    const len = n.length;
    const value = raw[i + 1];
    if (len < 64 && WATCH[len] === 0 && named === undefined && (dropLen === undefined || dropLen[len] === 0) && (extra === undefined || !hasLength(extra, len))) {
      head += `${n}: ${value}\r\n`;
      continue;
    }
    const name = n.toLowerCase();
    if (HOP_BY_HOP.has(name) || (named !== undefined && named.has(name))) continue;
    if (extra !== undefined && includesName(extra, name)) continue;
    if (drop !== undefined && drop.has(name)) continue;
    switch (name) {
      case 'x-forwarded-for':
        xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      case 'traceparent':
        traceparent = value;
        continue;
      case 'tracestate':
        tracestate = tracestate === undefined ? value : `${tracestate},${value}`;
        continue;
      case 'host':
        host = true;
        break;
      case 'x-forwarded-host':
        xfHost = true;
        break;
      case 'x-forwarded-proto':
        xfProto = true;
        break;
    }
    head += `${n}: ${value}\r\n`;
  }
  if (!host) {
    const d = input.defaultHost;
    head += typeof d === 'string' ? `host: ${d}\r\n` : `host: ${d.host}:${d.port}\r\n`;
  }
  head += `x-forwarded-for: ${xff === undefined ? input.clientIp : `${xff}, ${input.clientIp}`}\r\n`;
  if (!xfHost && host) {
    for (let i = 0; i < raw.length; i += 2) if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') { head += `x-forwarded-host: ${raw[i + 1]}\r\n`; break; }
  }
  if (!xfProto) head += `x-forwarded-proto: ${input.proto}\r\n`;
  const tp = ensureTraceparent(traceparent);
  head += `traceparent: ${tp}\r\n`;
  if (tracestate !== undefined && tp === traceparent) head += `tracestate: ${tracestate}\r\n`;
  if (extra !== undefined) for (let i = 0; i < extra.length; i += 2) head += `${extra[i]}: ${extra[i + 1]}\r\n`;
  if (input.chunked) head += 'transfer-encoding: chunked\r\n';
  return head + '\r\n';
}

function hasLength(flat: readonly string[], len: number): boolean {
  for (let i = 0; i < flat.length; i += 2) if (flat[i].length === len) return true;
  return false;
}
