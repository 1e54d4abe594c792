/**
 * The mesh's node:tls options and TLS error reasons moved to mesh-tls.ts (lean: no
 * @peculiar/x509, so the sidecar's data path can load it). Re-exported here for modules written
 * against this path; new code imports mesh-tls.js.
 */
export { mtlsClientContext, mtlsClientOptions, mtlsServerOptions, meshServerCheck, peerIdentity, tlsError, trustDomainOf, type PeerIdentity, type WorkloadCredentials } from './mesh-tls.js';
