/**
 * A mesh workload for tests that call an app sidecar's inbound port directly: a key and a
 * workload certificate issued by a real cluster's mesh CA (its ClusterPki, in-process), and
 * requests / raw sockets over mTLS with them, exactly as another sidecar of that cluster connects.
 */
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { IncomingHttpHeaders } from 'node:http';
import type { ClusterPki } from '../../src/identity/cluster-pki.js';
import { meshServerCheck } from '../../src/identity/mesh-tls.js';

export interface MeshReply { status: number; headers: IncomingHttpHeaders; text: string }

export interface MeshClient {
  spiffeId: string;
  /** One request over a fresh mTLS connection to 127.0.0.1:port. */
  request(port: number, path: string, init?: { method?: string; body?: string; headers?: Record<string, string> }): Promise<MeshReply>;
  /** A connected, verified mTLS socket to 127.0.0.1:port, for raw bytes. */
  socket(port: number): Promise<TLSSocket>;
}

export async function meshClient(pki: ClusterPki, serviceAccount = 'test-client', namespace = 'test'): Promise<MeshClient> {
  const spiffeId = `spiffe://${pki.trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
  const creds = await pki.localWorkload(spiffeId);
  const tlsOpts = { key: creds.keyPem, cert: creds.chainPem, ca: creds.roots, minVersion: 'TLSv1.3' as const, checkServerIdentity: meshServerCheck(pki.trustDomain) };
  return {
    spiffeId,
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
