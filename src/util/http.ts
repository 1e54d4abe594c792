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
