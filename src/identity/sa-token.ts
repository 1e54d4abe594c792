/**
 * Service account tokens: JWTs (ES256, `jose`) a cluster issues through the Kubernetes
 * TokenRequest API and accepts back on the identity endpoints. Claims as Kubernetes' bound tokens:
 * `iss` crossmesh:<cluster>, `sub` system:serviceaccount:<ns>:<sa>, `aud` (default: the issuer,
 * the only audience this API accepts), `exp`/`iat`/`nbf`, `jti`, and `kubernetes.io` {namespace,
 * serviceaccount {name, uid}}. The signing key (P-256) is persisted in the cluster's pki/ dir
 * (0600) so tokens outlive a restart; `dir` null keeps it in memory (tests).
 */
import { createPublicKey, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, exportPKCS8, generateKeyPair, importPKCS8, importSPKI, jwtVerify, SignJWT, errors as joseErrors, type CryptoKey, type JWTPayload } from 'jose';
import { CrossmeshError } from '../errors.js';
import { PKI_FILES } from './pki-settings.js';

const ALG = 'ES256';
/** Kubernetes' limits for a TokenRequest's expirationSeconds: at least 10 minutes; crossmesh: at most (and by default) a year. */
export const MIN_TOKEN_SECONDS = 600;
export const DEFAULT_TOKEN_SECONDS = 365 * 24 * 3600;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Who a verified token says the caller is. */
export interface ServiceAccountPrincipal {
  namespace: string;
  serviceAccount: string;
  /** The ServiceAccount's uid when the token was issued (a re-created account gets another). */
  uid?: string;
  expiresAt: Date;
}

export interface IssuedToken {
  token: string;
  expirationTimestamp: Date;
  audiences: string[];
  expirationSeconds: number;
}

function unauthorized(message: string, cause?: unknown): CrossmeshError {
  return new CrossmeshError('CM_ERR_UNAUTHORIZED', `Unauthorized: ${message}`, cause === undefined ? {} : { cause });
}

/** True for a compact JWS (three base64url parts): what to try as a service account token. */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}

export class SaTokens {
  private constructor(
    readonly issuer: string,
    private readonly privateKey: CryptoKey,
    private readonly publicKey: CryptoKey,
    private readonly kid: string,
  ) {}

  /** Opens the token key in `pkiDir` (creating it, 0600, on first start); `null` = in memory. */
  static async open(pkiDir: string | null, opts: { clusterName: string }): Promise<SaTokens> {
    const file = pkiDir ? join(pkiDir, PKI_FILES.tokenKey) : undefined;
    let privateKey: CryptoKey;
    if (file && existsSync(file)) {
      try {
        privateKey = await importPKCS8(readFileSync(file, 'utf8'), ALG, { extractable: true });
      } catch (err) {
        throw new CrossmeshError('CM_ERR_CONFIG', `${file}: not a readable ES256 (P-256) private key; the cluster signs its service account tokens with it (restore it, or remove it to invalidate every token issued so far)`, { cause: err });
      }
    } else {
      privateKey = (await generateKeyPair(ALG, { extractable: true })).privateKey;
      if (file) {
        mkdirSync(pkiDir!, { recursive: true, mode: 0o700 });
        const tmp = `${file}.${process.pid}.tmp`;
        writeFileSync(tmp, await exportPKCS8(privateKey), { mode: 0o600 });
        chmodSync(tmp, 0o600);
        renameSync(tmp, file);
      }
    }
    // The public half, through node:crypto (jose has no "public from private").
    const spki = createPublicKey(await exportPKCS8(privateKey)).export({ type: 'spki', format: 'pem' }) as string;
    const publicKey = await importSPKI(spki, ALG);
    const kid = await calculateJwkThumbprint(await exportJWK(publicKey));
    return new SaTokens(`crossmesh:${opts.clusterName}`, privateKey, publicKey, kid);
  }

  /** A token for `namespace/serviceAccount` (the caller checked the account exists). */
  async issue(opts: { namespace: string; serviceAccount: string; uid?: string; audiences?: string[]; expirationSeconds?: number; now?: Date }): Promise<IssuedToken> {
    if (!DNS_LABEL.test(opts.namespace) || !DNS_LABEL.test(opts.serviceAccount)) {
      throw new CrossmeshError('CM_ERR_INVALID', `service account ${opts.namespace}/${opts.serviceAccount}: namespace and name must be DNS labels`);
    }
    const seconds = opts.expirationSeconds ?? DEFAULT_TOKEN_SECONDS;
    if (!Number.isInteger(seconds) || seconds <= 0) throw new CrossmeshError('CM_ERR_INVALID', `expirationSeconds must be a positive whole number, got ${seconds}`);
    const audiences = opts.audiences && opts.audiences.length > 0 ? opts.audiences : [this.issuer];
    const iat = Math.floor((opts.now ?? new Date()).getTime() / 1000);
    const exp = iat + seconds;
    const token = await new SignJWT({
      'kubernetes.io': { namespace: opts.namespace, serviceaccount: { name: opts.serviceAccount, ...(opts.uid ? { uid: opts.uid } : {}) } },
    })
      .setProtectedHeader({ alg: ALG, kid: this.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setSubject(`system:serviceaccount:${opts.namespace}:${opts.serviceAccount}`)
      .setAudience(audiences)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(exp)
      .setJti(randomUUID())
      .sign(this.privateKey);
    return { token, expirationTimestamp: new Date(exp * 1000), audiences, expirationSeconds: seconds };
  }

  /**
   * Verifies a token: ES256 signature by this cluster's key, issuer this cluster, audience this
   * API, not expired, a service account subject. Anything else is CM_ERR_UNAUTHORIZED saying why.
   */
  async verify(token: string, opts: { now?: Date } = {}): Promise<ServiceAccountPrincipal> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.publicKey, {
        algorithms: [ALG],
        issuer: this.issuer,
        audience: this.issuer,
        clockTolerance: 5,
        ...(opts.now ? { currentDate: opts.now } : {}),
      }));
    } catch (err) {
      throw unauthorized(reasonOf(err, this.issuer), err);
    }
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(payload.sub ?? '');
    if (!m || !DNS_LABEL.test(m[1]) || !DNS_LABEL.test(m[2])) throw unauthorized(`the token's subject "${payload.sub ?? ''}" is not a service account`);
    const k8s = payload['kubernetes.io'] as { serviceaccount?: { uid?: unknown } } | undefined;
    const uid = typeof k8s?.serviceaccount?.uid === 'string' ? k8s.serviceaccount.uid : undefined;
    return { namespace: m[1], serviceAccount: m[2], uid, expiresAt: new Date((payload.exp ?? 0) * 1000) };
  }
}

function reasonOf(err: unknown, issuer: string): string {
  if (err instanceof joseErrors.JWTExpired) {
    const exp = (err.payload as JWTPayload).exp;
    return `the service account token expired${exp ? ` at ${new Date(exp * 1000).toISOString()}` : ''}; request a new one (POST /api/v1/namespaces/NS/serviceaccounts/SA/token)`;
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the service account token\'s signature does not verify: it was not issued by this cluster';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return `the service account token was issued by "${String((err.payload as JWTPayload).iss)}", not this cluster (${issuer})`;
    if (err.claim === 'aud') return `the service account token is not for this API (its audiences do not include ${issuer})`;
    if (err.claim === 'nbf') return 'the service account token is not valid yet';
    return `the service account token's "${err.claim}" claim is not valid (${err.reason})`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'the service account token is not signed with ES256';
  return `not a valid service account token (${(err as Error).message})`;
}
