/**
 * A mesh workload for tests that call an app sidecar's inbound port directly: a key and a
 * workload certificate issued by a real cluster's mesh CA (its ClusterPki, in-process), and
 * requests / raw sockets over mTLS with them, exactly as another sidecar of that cluster connects.
 */
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { IncomingHttpHeaders } from 'node:http';
import type { ClusterPki } from '../../src/identity/cluster-pki.js';
import { meshServerCheck } from '../../src/identity/mesh-tls.js';
import { ApiClient } from '../../src/client/api-client.js';
import type { ApiEndpoint } from '../../src/client/kubeconfig.js';
import { WorkloadIdentity } from '../../src/sidecar/workload-identity.js';

export interface MeshReply { status: number; headers: IncomingHttpHeaders; text: string }

export interface MeshClient {
  spiffeId: string;
  /** node:tls options presenting this workload (for raw tls.connect). */
  tlsOptions: ConnectionOptions;
  /** One request over a fresh mTLS connection to 127.0.0.1:port. */
  request(port: number, path: string, init?: { method?: string; body?: string; headers?: Record<string, string> }): Promise<MeshReply>;
  /** A connected, verified mTLS socket to 127.0.0.1:port, for raw bytes. */
  socket(port: number): Promise<TLSSocket>;
}

/** With a certificate from a cluster's PKI in this process (in-process clusters). */
export async function meshClient(pki: ClusterPki, serviceAccount = 'test-client', namespace = 'test'): Promise<MeshClient> {
  const spiffeId = `spiffe://${pki.trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
  return clientWith(spiffeId, pki.trustDomain, await pki.localWorkload(spiffeId));
}

/**
 * With a certificate obtained from a cluster's API exactly as a sidecar gets one (TokenRequest,
 * trust bundle, key made here, CSR-style request): for clusters running in their own process.
 */
export async function meshClientVia(endpoint: ApiEndpoint, namespace: string, serviceAccount = 'test-client'): Promise<MeshClient> {
  const client = new ApiClient(endpoint);
  const identity = new WorkloadIdentity({ client, tokenClient: (token) => new ApiClient({ ...endpoint, token }), namespace, serviceAccount, label: 'test mesh client' });
  try {
    const bundle = await identity.start();
    const creds = identity.current()!;
    return clientWith(creds.spiffeId, bundle.trustDomain, creds);
  } finally {
    await identity.close();
    await client.close();
  }
}

function clientWith(spiffeId: string, trustDomain: string, creds: { keyPem: string; chainPem: string; roots: string[] }): MeshClient {
  const tlsOpts = { key: creds.keyPem, cert: creds.chainPem, ca: creds.roots, minVersion: 'TLSv1.3' as const, checkServerIdentity: meshServerCheck(trustDomain) };
  return {
    spiffeId,
    tlsOptions: tlsOpts,
    request(port, path, init = {}) {
      return new Promise((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers: { host: 'mesh', ...init.headers }, agent: false, ...tlsOpts }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
        });
        req.on('error', reject);
        req.end(init.body);
      });
    },
    socket(port) {
      return new Promise((resolve, reject) => {
        const s = tlsConnect({ host: '127.0.0.1', port, ...tlsOpts }, () => resolve(s));
        s.once('error', reject);
      });
    },
  };
}
