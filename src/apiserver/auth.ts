import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { CrossmeshError } from '../errors.js';

/**
 * Loads the cluster's API token from `file`, creating a random one (mode 0600) on first start.
 * The token is what `crossmesh kubeconfig get` hands out; keeping it stable across restarts
 * keeps every kubeconfig (and every Cluster resource holding one) valid.
 */
export function loadOrCreateToken(file: string): string {
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token.length >= 32) return token;
  }
  const token = randomBytes(32).toString('hex');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return token;
}

/** Checks `Authorization: Bearer <token>` in constant time; throws CM_ERR_UNAUTHORIZED. */
export function makeTokenCheck(token: string): (req: IncomingMessage) => void {
  const expected = Buffer.from(token);
  return (req) => {
    const header = req.headers.authorization;
    if (!header) throw new CrossmeshError('CM_ERR_UNAUTHORIZED', 'Unauthorized: no bearer token; use a kubeconfig from `crossmesh kubeconfig get NAME`');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const given = m ? Buffer.from(m[1]) : Buffer.alloc(0);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new CrossmeshError('CM_ERR_UNAUTHORIZED', 'Unauthorized: the bearer token is not valid for this cluster');
    }
  };
}
