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
 * One GET over node:http on a fresh connection, the body as text; rejects on a transport error
 * or after `timeoutMs`. For the CLI's health and metadata checks: the global `fetch` would load
 * Node's bundled undici (~40 ms and ~40 MB of peak memory in a short-lived CLI process).
 */
export async function httpGet(url: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.once('error', reject);
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)), timeoutMs);
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}
