/**
 * node:tls options for mesh mTLS and reading the peer's identity from a socket. TLS 1.3 only;
 * the mesh root is the only trust anchor (`ca`), so a chain from any other root fails in the
 * handshake; both sides present their chain (leaf + intermediate). OpenSSL verifies chains and
 * validity; the SPIFFE ID is checked by crossmesh: on the client in `checkServerIdentity` (the
 * handshake fails), on the server with `peerSpiffeId()` right after 'secureConnection'.
 */
import type { ConnectionOptions, PeerCertificate, SecureContextOptions, TLSSocket, TlsOptions } from 'node:tls';
import { CrossmeshError } from '../errors.js';
import { spiffeIdOf, trustDomainOf } from './verify.js';

/** What a workload presents and trusts. */
export interface WorkloadCredentials {
  /** PKCS #8 PEM private key (the sidecar's own). */
  keyPem: string;
  /** Leaf then intermediates, PEM. */
  chainPem: string;
  /** The mesh root, PEM. */
  rootPem: string;
}

function baseOptions(creds: WorkloadCredentials): SecureContextOptions {
  return { key: creds.keyPem, cert: creds.chainPem, ca: creds.rootPem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' };
}

/** For `tls.createServer()`: asks for and verifies a client certificate; a connection without one fails the handshake. */
export function mtlsServerOptions(creds: WorkloadCredentials): TlsOptions {
  return { ...baseOptions(creds), requestCert: true, rejectUnauthorized: true };
}

/**
 * For `tls.connect()`: verifies the server's chain and that it carries a workload SPIFFE ID of
 * the root's trust domain, and, given `expectedServerId`, exactly that one (host names are not
 * checked: the identity is the SPIFFE ID).
 */
export function mtlsClientOptions(creds: WorkloadCredentials, opts: { expectedServerId?: string } = {}): ConnectionOptions {
  const trustDomain = trustDomainOf(creds.rootPem);
  return {
    ...baseOptions(creds),
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
      try {
        const { spiffeId } = spiffeIdOf(cert.raw, trustDomain);
        if (opts.expectedServerId !== undefined && spiffeId !== opts.expectedServerId) {
          return new CrossmeshError('CM_ERR_CERT_INVALID', `server is ${spiffeId}, expected ${opts.expectedServerId}`);
        }
        return undefined;
      } catch (err) {
        return err as Error;
      }
    },
  };
}

/**
 * The SPIFFE ID of a connected socket's peer. Throws CM_ERR_CERT_INVALID if the handshake did not
 * verify the peer's chain (no certificate, or `rejectUnauthorized` was off) or its leaf carries
 * no valid workload ID of the root's trust domain; the caller then destroys the socket.
 */
export function peerSpiffeId(socket: TLSSocket, rootPem: string): string {
  if (!socket.authorized) {
    throw new CrossmeshError('CM_ERR_CERT_INVALID', `peer not verified: ${String(socket.authorizationError ?? 'no certificate')}`);
  }
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.raw) throw new CrossmeshError('CM_ERR_CERT_INVALID', 'the peer sent no certificate');
  return spiffeIdOf(cert.raw, trustDomainOf(rootPem)).spiffeId;
}

/** OpenSSL verification codes node reports, in words a mesh operator acts on. */
const TLS_REASONS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'the peer certificate has expired',
  CERT_NOT_YET_VALID: 'the peer certificate is not valid yet (clock skew?)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the peer certificate is not from this mesh's root",
  UNABLE_TO_GET_ISSUER_CERT: "the peer certificate is not from this mesh's root",
  SELF_SIGNED_CERT_IN_CHAIN: "the peer certificate chains to another root, not this mesh's",
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the peer certificate is self-signed',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the peer certificate is not from this mesh's root",
  CERT_SIGNATURE_FAILURE: 'a signature in the peer chain does not verify',
  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: 'the peer sent no certificate',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the server requires a client certificate and none was sent',
};

/**
 * A TLS failure (with the socket it happened on, if any) as a CrossmeshError, for logs and refusals: a certificate refusal (an OpenSSL
 * verify code, or ours from `checkServerIdentity`) → CM_ERR_CERT_INVALID with a plain reason;
 * anything else (plaintext to a TLS port, a protocol version, a reset) → CM_ERR_UNAVAILABLE
 * with the original as `cause`.
 */
export function tlsError(err: unknown, socket?: TLSSocket): CrossmeshError {
  if (err instanceof CrossmeshError) return err;
  // A server with rejectUnauthorized destroys a socket whose client chain failed without
  // passing the reason on: 'tlsClientError' only says "socket hang up". The verify code is
  // left on the socket, so pass the socket ('tlsClientError' gives it as the second argument).
  const verifyCode = socket?.authorizationError;
  const code = typeof verifyCode === 'string' && verifyCode !== '' ? verifyCode : (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && code in TLS_REASONS) {
    return new CrossmeshError('CM_ERR_CERT_INVALID', `TLS handshake refused: ${TLS_REASONS[code]} (${code})`, { cause: err });
  }
  return new CrossmeshError('CM_ERR_UNAVAILABLE', `TLS connection failed: ${message}`, { cause: err });
}
