/**
 * Mesh mTLS on the data path, with node:tls and node:crypto only: this module is what a sidecar
 * loads per connection, so it must not pull in @peculiar/x509 (verify.ts / x509.ts: +21 MB RSS
 * and ~190 ms of start time in a sidecar). Its imports are node built-ins, ../errors.js and
 * ./spiffe.js (which itself imports only ../errors.js).
 *
 * TLS 1.3 only. The trust anchors are the cluster's trust bundle (the mesh root, plus the
 * cluster's own root while its own pre-join certificates are still in use): a chain to any
 * other root fails in the handshake. Both sides present their chain (leaf + intermediate).
 * OpenSSL verifies chains and validity; the SPIFFE ID is crossmesh's check: on the client in
 * `checkServerIdentity` (the handshake fails), on the server by `peerIdentity()` right after
 * 'secureConnection' (the connection is destroyed before a byte of it is read).
 *
 * Identity is read from node's PeerCertificate: `subjectaltname` (node's string form, parsed
 * here with its quoting rules so that a DNS name holding ", URI:..." can't forge a second SAN)
 * and `issuer.CN`, the issuing intermediate's subject (`crossmesh cluster <name> CA`, see
 * ca.ts issueIntermediate). The leaf's issuer name is used rather than the chain's
 * `issuerCertificate` because a resumed TLS session carries the leaf only: the server sees no
 * chain then (checked in tls.test.ts). The name is as trustworthy as the chain: it is inside
 * the leaf's signed part and chain building matched it to the intermediate's subject.
 */
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type ConnectionOptions, type PeerCertificate, type SecureContext, type SecureContextOptions, type TLSSocket, type TlsOptions } from 'node:tls';
import { CrossmeshError } from '../errors.js';
import { DEFAULT_TRUST_DOMAIN, parseSpiffeId, parseWorkloadId } from './spiffe.js';

/** What a workload presents and trusts. */
export interface WorkloadCredentials {
  /** PKCS #8 PEM private key (the workload's own). */
  keyPem: string;
  /** Leaf then intermediates, PEM. */
  chainPem: string;
  /** The trust bundle: every root PEM a peer's chain may end at. */
  roots: string[];
  /** The mesh's trust domain; when absent, read from the first root's `spiffe://<td>` SAN (the default without one). */
  trustDomain?: string;
}

/** Who is on the other end of a verified mesh connection. */
export interface PeerIdentity {
  spiffeId: string;
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
  /** The cluster whose intermediate CA issued the peer's certificate. */
  cluster: string;
}

function certInvalid(message: string): CrossmeshError {
  return new CrossmeshError('CM_ERR_CERT_INVALID', message);
}

/** The key, chain, trust bundle and protocol every mesh TLS context has. */
function contextOptions(creds: WorkloadCredentials): SecureContextOptions {
  if (creds.roots.length === 0) throw new CrossmeshError('CM_ERR_CONFIG', 'mesh TLS credentials have an empty trust bundle (no root certificate)');
  return { key: creds.keyPem, cert: creds.chainPem, ca: creds.roots, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' };
}

/**
 * For `tls.createServer()` / H1Server's `tls.options` / `setSecureContext()`: asks for and
 * verifies a client certificate; a connection without one, or with a chain to no root of the
 * bundle, fails the handshake.
 */
export function mtlsServerOptions(creds: WorkloadCredentials): TlsOptions {
  return { ...contextOptions(creds), requestCert: true, rejectUnauthorized: true };
}

/**
 * A client SecureContext for these credentials. Building one parses the key and every
 * certificate (about a millisecond), so a pool builds it once per certificate rotation and
 * hands the same object to every new connection (UpstreamTls.context()).
 */
export function mtlsClientContext(creds: WorkloadCredentials): SecureContext {
  return createSecureContext(contextOptions(creds));
}

/**
 * For `tls.connect()`: verifies the server's chain and that it is a workload of the mesh's trust
 * domain, and, given `expectedServerId`, exactly that one (host names are not checked: the
 * identity is the SPIFFE ID). `trustDomain` overrides the credentials'.
 */
export function mtlsClientOptions(creds: WorkloadCredentials, opts: { expectedServerId?: string; trustDomain?: string } = {}): ConnectionOptions {
  const trustDomain = opts.trustDomain ?? trustDomainOf(creds);
  return { ...contextOptions(creds), rejectUnauthorized: true, checkServerIdentity: meshServerCheck(trustDomain, opts.expectedServerId) };
}

/** A `checkServerIdentity` for mesh servers: one workload SPIFFE ID of `trustDomain`, and `expectedServerId` when given. */
export function meshServerCheck(trustDomain: string, expectedServerId?: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    try {
      const { spiffeId } = workloadOf(cert, trustDomain, 'server');
      if (expectedServerId !== undefined && spiffeId !== expectedServerId) {
        return certInvalid(`server is ${spiffeId}, expected ${expectedServerId}`);
      }
      return undefined;
    } catch (err) {
      return err as Error;
    }
  };
}

/** The trust domain of credentials: given, or declared by the first root. */
export function trustDomainOf(creds: WorkloadCredentials): string {
  if (creds.trustDomain !== undefined) return creds.trustDomain;
  if (creds.roots.length === 0) throw new CrossmeshError('CM_ERR_CONFIG', 'mesh TLS credentials have an empty trust bundle (no root certificate)');
  let san: string | undefined;
  try {
    san = new X509Certificate(creds.roots[0]).subjectAltName;
  } catch (err) {
    throw new CrossmeshError('CM_ERR_CA_INVALID', 'the first root of the trust bundle is not a readable PEM certificate', { cause: err });
  }
  const declared = san === undefined ? undefined : sanEntries(san)?.find((e) => e.type === 'URI' && e.value.startsWith('spiffe://'));
  return declared === undefined ? DEFAULT_TRUST_DOMAIN : parseSpiffeId(declared.value).trustDomain;
}

/**
 * The verified identity of a server-side socket's peer, read once per connection right after
 * 'secureConnection'. Throws CM_ERR_CERT_INVALID with a plain reason: the handshake did not
 * verify the peer's chain (no certificate, or `rejectUnauthorized` was off), the leaf carries no
 * single workload ID of `trustDomain`, its issuer is not a crossmesh cluster CA, or (a resumed
 * session, which OpenSSL does not re-verify) the certificate has expired since. The caller then
 * destroys the socket.
 */
export function peerIdentity(socket: TLSSocket, trustDomain: string, now: number = Date.now()): PeerIdentity {
  if (!socket.authorized) {
    const code = socket.authorizationError;
    const reason = typeof code === 'string' && code in TLS_REASONS ? `${TLS_REASONS[code]} (${code})` : String(code ?? 'no certificate');
    throw certInvalid(`peer not verified: ${reason}`);
  }
  const cert = socket.getPeerCertificate();
  // node gives {} for "no certificate".
  if (!cert || cert.raw === undefined) throw certInvalid('the peer sent no certificate');
  if (socket.isSessionReused()) {
    // A resumed session skips chain verification; the ticket's lifetime bounds how long ago
    // the chain was verified, not the leaf's own validity.
    const notAfter = Date.parse(cert.valid_to);
    if (!(notAfter > now)) throw certInvalid(`the peer certificate expired at ${cert.valid_to} (on a resumed TLS session)`);
  }
  const id = workloadOf(cert, trustDomain, 'peer');
  return { ...id, cluster: clusterOfIssuer(cert) };
}

function workloadOf(cert: PeerCertificate, trustDomain: string, role: 'peer' | 'server'): Omit<PeerIdentity, 'cluster'> {
  const san = cert.subjectaltname;
  if (san === undefined || san === '') throw certInvalid(`${role} certificate has no SPIFFE ID (no subjectAltName)`);
  let uri: string | undefined;
  // The common case is one plain `URI:spiffe://...` entry (nothing node would quote).
  if (san.startsWith('URI:') && !san.includes(',') && !san.includes('"')) uri = san.slice(4);
  else {
    const entries = sanEntries(san);
    if (entries === undefined) throw certInvalid(`${role} certificate has an unreadable subjectAltName`);
    const uris = entries.filter((e) => e.type === 'URI');
    if (uris.length === 0) throw certInvalid(`${role} certificate has no SPIFFE ID (no URI subjectAltName)`);
    if (uris.length > 1) throw certInvalid(`${role} certificate has ${uris.length} URI subjectAltNames; an X.509-SVID has exactly one`);
    uri = uris[0].value;
  }
  let id;
  try {
    id = parseWorkloadId(uri);
  } catch (err) {
    throw certInvalid(`${role} certificate has an invalid SPIFFE ID: ${(err as Error).message}`);
  }
  if (id.trustDomain !== trustDomain) {
    throw certInvalid(`${role} certificate's SPIFFE ID ${uri} is from trust domain "${id.trustDomain}", not this mesh's "${trustDomain}"`);
  }
  return { spiffeId: uri, trustDomain: id.trustDomain, namespace: id.namespace, serviceAccount: id.serviceAccount };
}

/** The subject CN ca.ts issueIntermediate gives a cluster's intermediate CA. */
const CLUSTER_CA_CN = /^crossmesh cluster ([a-z0-9](?:[-a-z0-9.]{0,61}[a-z0-9])?) CA$/;

/** The cluster name in an intermediate CA's subject CN (`crossmesh cluster <name> CA`), or undefined. */
export function clusterOfCaName(cn: string): string | undefined {
  return CLUSTER_CA_CN.exec(cn)?.[1];
}

function clusterOfIssuer(cert: PeerCertificate): string {
  const cn: unknown = cert.issuer?.CN;
  const cluster = typeof cn === 'string' ? clusterOfCaName(cn) : undefined;
  if (cluster === undefined) {
    throw certInvalid(`peer certificate was issued by ${JSON.stringify(typeof cn === 'string' ? cn : cn ?? '')}, not by a crossmesh cluster CA ("crossmesh cluster <name> CA")`);
  }
  return cluster;
}

/**
 * node's `subjectaltname` string as entries: `TYPE:value` joined by ", ", where a value holding
 * a character that could be mistaken for a separator is written as a JSON string (node's
 * escaping since CVE-2021-44532). undefined when it does not follow that form.
 */
export function sanEntries(san: string): { type: string; value: string }[] | undefined {
  const out: { type: string; value: string }[] = [];
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(':', i);
    if (colon === -1) return undefined;
    const type = san.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (san[j] === '"') {
      let k = j + 1;
      while (k < san.length && san[k] !== '"') k += san[k] === '\\' ? 2 : 1;
      if (k >= san.length) return undefined;
      try {
        value = JSON.parse(san.slice(j, k + 1)) as string;
      } catch {
        return undefined;
      }
      j = k + 1;
    } else {
      const comma = san.indexOf(', ', j);
      const end = comma === -1 ? san.length : comma;
      value = san.slice(j, end);
      j = end;
    }
    out.push({ type, value });
    if (j === san.length) break;
    if (!san.startsWith(', ', j)) return undefined;
    i = j + 2;
  }
  return out;
}

/** OpenSSL verification codes and node TLS errors, in words a mesh operator acts on. */
const TLS_REASONS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'the peer certificate has expired',
  CERT_NOT_YET_VALID: 'the peer certificate is not valid yet (clock skew?)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the peer certificate is not from this mesh's roots",
  UNABLE_TO_GET_ISSUER_CERT: "the peer certificate is not from this mesh's roots",
  SELF_SIGNED_CERT_IN_CHAIN: "the peer certificate chains to another root, not one of this mesh's",
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the peer certificate is self-signed',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the peer certificate is not from this mesh's roots",
  CERT_SIGNATURE_FAILURE: 'a signature in the peer chain does not verify',
  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: 'the peer sent no certificate',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the server requires a client certificate and none was sent',
};

/** Failures that are not about a certificate, with the CM_ERR code they are reported as. */
const TLS_FAILURES: Record<string, { code: 'CM_ERR_TIMEOUT' | 'CM_ERR_UNAVAILABLE'; reason: string }> = {
  ERR_TLS_HANDSHAKE_TIMEOUT: { code: 'CM_ERR_TIMEOUT', reason: 'the TLS handshake did not complete in time (a stalled or very slow client)' },
  ERR_SSL_HTTP_REQUEST: { code: 'CM_ERR_UNAVAILABLE', reason: 'the peer sent a plaintext HTTP request to a TLS port' },
  ERR_SSL_WRONG_VERSION_NUMBER: { code: 'CM_ERR_UNAVAILABLE', reason: 'the peer does not speak TLS 1.3 (plaintext, or another protocol version)' },
  ERR_SSL_UNSUPPORTED_PROTOCOL: { code: 'CM_ERR_UNAVAILABLE', reason: 'the peer offered only TLS versions older than 1.3' },
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: { code: 'CM_ERR_UNAVAILABLE', reason: 'the peer does not accept TLS 1.3' },
};

/**
 * A TLS failure (with the socket it happened on, if any) as a CrossmeshError, for logs,
 * refusals and metrics: a certificate refusal (an OpenSSL verify code, or ours from
 * `checkServerIdentity`) → CM_ERR_CERT_INVALID with a plain reason; a stalled handshake →
 * CM_ERR_TIMEOUT; anything else (plaintext to a TLS port, a protocol version, a reset) →
 * CM_ERR_UNAVAILABLE. The original error is the `cause`.
 */
export function tlsError(err: unknown, socket?: TLSSocket): CrossmeshError {
  if (err instanceof CrossmeshError) return err;
  // A server with rejectUnauthorized destroys a socket whose client chain failed without
  // passing the reason on: 'tlsClientError' only says "socket hang up". The verify code is
  // left on the socket, so pass the socket ('tlsClientError' gives it as the second argument).
  const verifyCode = socket?.authorizationError;
  const code = typeof verifyCode === 'string' && verifyCode !== '' ? verifyCode : (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string') {
    if (code in TLS_REASONS) return new CrossmeshError('CM_ERR_CERT_INVALID', `TLS handshake refused: ${TLS_REASONS[code]} (${code})`, { cause: err });
    const f = TLS_FAILURES[code];
    if (f !== undefined) return new CrossmeshError(f.code, `TLS connection failed: ${f.reason} (${code})`, { cause: err });
  }
  return new CrossmeshError('CM_ERR_UNAVAILABLE', `TLS connection failed: ${message}${typeof code === 'string' && !message.includes(code) ? ` (${code})` : ''}`, { cause: err });
}
