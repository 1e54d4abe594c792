/**
 * The identity endpoints of a cluster API (issue 14): paths and JSON bodies, shared by the API
 * server (`apiserver/identity-routes.ts`), the API client and the sidecar. Types and constants
 * only, no imports, so the sidecar loads nothing for it.
 *
 *   POST /api/v1/namespaces/{ns}/serviceaccounts/{sa}/token   TokenRequest (admin token)
 *   GET  /apis/identity.crossmesh.io/v1/trustbundle           TrustBundle (admin or SA token)
 *   POST /apis/identity.crossmesh.io/v1/workloadcertificates  WorkloadCertificateRequest → WorkloadCertificateResponse (SA token only)
 *   POST /apis/identity.crossmesh.io/v1/intermediate/csr      {trustDomain} → {csr} (admin)
 *   PUT  /apis/identity.crossmesh.io/v1/intermediate          {certificateChain} → IntermediateInfo (admin)
 *   GET  /apis/identity.crossmesh.io/v1/intermediate          IntermediateInfo (admin)
 */
export const IDENTITY_GROUP = 'identity.crossmesh.io';
export const IDENTITY_API = `/apis/${IDENTITY_GROUP}/v1`;
export const TRUST_BUNDLE_PATH = `${IDENTITY_API}/trustbundle`;
export const WORKLOAD_CERTIFICATES_PATH = `${IDENTITY_API}/workloadcertificates`;
export const INTERMEDIATE_PATH = `${IDENTITY_API}/intermediate`;
export const INTERMEDIATE_CSR_PATH = `${IDENTITY_API}/intermediate/csr`;

export type MeshMode = 'mtls' | 'plaintext';

/** The REST path of a service account's TokenRequest. */
export function tokenRequestPath(namespace: string, serviceAccount: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(serviceAccount)}/token`;
}

/** Kubernetes authentication.k8s.io/v1 TokenRequest, as sent and as answered (201). */
export interface TokenRequest {
  apiVersion: 'authentication.k8s.io/v1';
  kind: 'TokenRequest';
  metadata?: { name?: string; namespace?: string; creationTimestamp?: string };
  spec: { audiences?: string[]; expirationSeconds?: number; boundObjectRef?: null };
  status?: { token: string; expirationTimestamp: string };
}

export interface TrustBundle {
  trustDomain: string;
  mode: MeshMode;
  /** PEM roots a peer's chain must end at: the mesh root, and this cluster's own root. */
  roots: string[];
  /** Changes exactly when `roots` do. */
  generation: string;
  workloadCertTtlSeconds: number;
}

/** Either a PKCS #10 CSR, or (node:crypto form, see `pop.ts`) a public key with a proof of possession. */
export type WorkloadCertificateRequest = { csr: string } | { publicKey: string; spiffeId: string; proof: string };

export interface WorkloadCertificateResponse {
  spiffeId: string;
  /** Leaf first, then the intermediate(s); not the root. */
  certificateChain: string[];
  roots: string[];
  /** RFC 3339. */
  notAfter: string;
}

export interface IntermediateInfo {
  /** Issuer DN of the cluster's mesh CA (the root that signed it). */
  issuer: string;
  /** Subject DN of the mesh CA ("CN=crossmesh cluster <name> CA, O=crossmesh"). */
  subject: string;
  trustDomain: string;
  /** RFC 3339. */
  notAfter: string;
  /** SHA-256 fingerprint of the root the mesh CA chains to (`AB:CD:...`, as openssl prints it). */
  rootFingerprint: string;
  /** True once 2/3 of the mesh CA's life has passed (or it expired): time to issue a new one. */
  rotationDue: boolean;
  /** False while the mesh CA is the cluster's own (signed by its own root, not a control plane's). */
  joined: boolean;
}
