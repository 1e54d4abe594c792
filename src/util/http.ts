import type { IncomingMessage } from 'node:http';
import { CrossmeshError } from '../errors.js';

/**
 * Reads a whole request body up to `limit` bytes. Bodies over the limit are refused with
 * CM_ERR_TOO_LARGE as soon as the limit is crossed (Content-Length is checked first, so a
 * huge declared body is refused before any of it is read).
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    throw new CrossmeshError('CM_ERR_TOO_LARGE', `request body of ${declared} bytes is over the limit of ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      throw new CrossmeshError('CM_ERR_TOO_LARGE', `request body is over the limit of ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

/**
 * One GET on a fresh connection, the body as text; rejects on a transport error, a reply that is
 * not HTTP, or after `timeoutMs`. For the CLI's health and metadata checks against crossmesh's
 * own servers: HTTP/1.0 over node:net, or node:tls for https:// (verified against `opts.ca`
 * when given; the reply then has no chunked framing and ends when the server closes), so a
 * short-lived CLI process initialises neither the node:http client (~3 ms on its first request)
 * nor, as the global `fetch` would, Node's bundled undici (~40 ms and ~40 MB of peak memory).
 */
export async function httpGet(url: string, timeoutMs: number, opts: { ca?: string } = {}): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`httpGet: only http:// and https:// URLs (${url})`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const request = `GET ${u.pathname}${u.search} HTTP/1.0\r\nHost: ${u.host}\r\nAccept: application/json\r\n\r\n`;
  let socket: import('node:net').Socket;
  if (u.protocol === 'https:') {
    const { connect } = await import('node:tls');
    const { isIP } = await import('node:net');
    socket = connect({ host, port: Number(u.port) || 443, ...(opts.ca ? { ca: opts.ca } : {}), ...(isIP(host) ? {} : { servername: host }) }, () => socket.write(request));
  } else {
    const { connect } = await import('node:net');
    socket = connect({ host, port: Number(u.port) || 80 }, () => socket.end(request));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('end', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks);
      const head = raw.indexOf('\r\n\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw.subarray(0, Math.max(0, head)).toString('latin1'));
      if (head < 0 || !m) return reject(new Error(`${url}: not an HTTP reply`));
      resolve({ status: Number(m[1]), text: raw.subarray(head + 4).toString('utf8') });
    });
  });
}
