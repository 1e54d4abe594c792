/**
 * node:http2, loaded on first use: loading it costs a sidecar ~4.4 MB of RSS (measured on Node
 * 20), and most apps never speak HTTP/2. Modules of the data path import only its types
 * statically and call `http2()` when a connection turns out to be HTTP/2.
 */
import { createRequire } from 'node:module';

type Http2 = typeof import('node:http2');
let mod: Http2 | undefined;

export function http2(): Http2 {
  mod ??= createRequire(import.meta.url)('node:http2') as Http2;
  return mod;
}

/** HTTP/2 error codes and frame flags used by the proxy (RFC 9113 §7, §6.2), without loading node:http2. */
export const H2 = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  ENHANCE_YOUR_CALM: 11,
  FLAG_END_STREAM: 0x1,
} as const;
