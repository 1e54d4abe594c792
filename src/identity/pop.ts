/**
 * Proof of possession for the key form of a workload certificate request (no CSR): the sidecar
 * makes its P-256 key with node:crypto and sends `{publicKey, spiffeId, proof}`, where `proof` is
 * its signature (base64, DER ECDSA, SHA-256) over `proofText(spiffeId, publicKey)`. The cluster
 * checks it with `verifyProof` before it issues anything. Dependency-free (node:crypto only) so
 * the sidecar, which must not load the X.509 library, imports it as the cluster does.
 */
import { createPublicKey, sign, verify, type KeyLike } from 'node:crypto';

/** What the proof signs; `publicKeyPem` exactly as sent (SPKI PEM). */
export function proofText(spiffeId: string, publicKeyPem: string): string {
  return `crossmesh-workload-csr\n${spiffeId}\n${publicKeyPem}`;
}

/** The request body's `proof`: base64 of the signature over `proofText` with `privateKey`. */
export function signProof(spiffeId: string, publicKeyPem: string, privateKey: KeyLike): string {
  return sign('sha256', Buffer.from(proofText(spiffeId, publicKeyPem)), privateKey).toString('base64');
}

/** True when `proofB64` is a valid signature over `proofText(spiffeId, publicKeyPem)` by that key. */
export function verifyProof(spiffeId: string, publicKeyPem: string, proofB64: string): boolean {
  try {
    const signature = Buffer.from(proofB64, 'base64');
    if (signature.length === 0) return false;
    return verify('sha256', Buffer.from(proofText(spiffeId, publicKeyPem)), createPublicKey(publicKeyPem), signature);
  } catch {
    return false;
  }
}
