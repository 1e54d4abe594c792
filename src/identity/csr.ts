/**
 * The sidecar's side of issuance: a fresh P-256 key pair and a PKCS #10 request for its SPIFFE
 * ID. Only the CSR goes to the cluster process; the private key never leaves the sidecar.
 */
import { parseWorkloadId } from './spiffe.js';
import { EC_P256, generateKeyPair, privateKeyToPem, x509 } from './x509.js';

export interface WorkloadKeyAndCsr {
  /** PKCS #8 PEM private key, for node:tls `key`; keep it in the sidecar. */
  keyPem: string;
  /** The request to send to the cluster process. */
  csrPem: string;
}

/**
 * A key pair and a CSR asking for `spiffeId` (checked to be a workload ID) as its one URI SAN.
 * The CA issues what the requester is entitled to, not what it asks; naming it here lets the CA
 * refuse a sidecar that asks for someone else instead of silently issuing a different identity.
 */
export async function createWorkloadCsr(spiffeId: string): Promise<WorkloadKeyAndCsr> {
  parseWorkloadId(spiffeId);
  const keys = await generateKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ O: ['crossmesh'] }, { OU: ['workload'] }],
    keys,
    signingAlgorithm: EC_P256,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])],
  });
  return { keyPem: await privateKeyToPem(keys.privateKey), csrPem: csr.toString('pem') };
}
