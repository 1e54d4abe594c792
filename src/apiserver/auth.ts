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

/** Who made a request: the cluster's admin (its token), or a service account (a token it was issued). */
export type Principal =
  | { kind: 'admin' }
  | { kind: 'serviceaccount'; namespace: string; serviceAccount: string; uid?: string };

/**
 * Authenticates `Authorization: Bearer <token>`: the admin token (compared in constant time),
 * else, given `verifyServiceAccount`, a service account token (a JWT this cluster issued; it
 * rejects with the reason). Throws CM_ERR_UNAUTHORIZED.
 */
export function makeAuthenticator(opts: { token: string; verifyServiceAccount?: (token: string) => Promise<Principal> | undefined }): (req: IncomingMessage) => Promise<Principal> {
  const expected = Buffer.from(opts.token);
  const admin: Principal = { kind: 'admin' };
  return async (req) => {
    const header = req.headers.authorization;
    if (!header) throw new CrossmeshError('CM_ERR_UNAUTHORIZED', 'Unauthorized: no bearer token; use a kubeconfig from `crossmesh kubeconfig get NAME`');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const given = m ? Buffer.from(m[1]) : Buffer.alloc(0);
    if (given.length === expected.length && timingSafeEqual(given, expected)) return admin;
    const sa = m ? opts.verifyServiceAccount?.(m[1]) : undefined;
    if (sa) return sa;
    throw new CrossmeshError('CM_ERR_UNAUTHORIZED', 'Unauthorized: the bearer token is not valid for this cluster');
  };
}
