/**
 * The gRPC API's GetMetadata / SetMetadata go to the sidecar's own Dapr HTTP API over loopback,
 * so both APIs answer from one metadata document and one `extended` map (as daprd's universal
 * API does), built in one place (src/dapr/server.ts).
 */
import { request as httpRequest } from 'node:http';

/** `/v1.0/metadata` of the sidecar's HTTP API: one metadata (and one `extended` map) for both APIs. */
export interface MetadataSource {
  get(): Promise<Record<string, any>>;
  set(key: string, value: string): Promise<void>;
}

/** The metadata of a Dapr HTTP API on 127.0.0.1:`port` (the sidecar's own), over loopback. */
export function httpMetadataSource(port: number, apiToken: string | undefined): MetadataSource {
  const call = (method: string, path: string, body?: string): Promise<{ status: number; text: string }> => new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (apiToken) headers['dapr-api-token'] = apiToken;
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
  return {
    async get() {
      const r = await call('GET', '/v1.0/metadata');
      if (r.status !== 200) throw new Error(`the sidecar's metadata answered ${r.status}: ${r.text}`);
      return JSON.parse(r.text) as Record<string, any>;
    },
    async set(key, value) {
      const r = await call('PUT', `/v1.0/metadata/${encodeURIComponent(key)}`, value);
      if (r.status !== 204) throw new Error(`the sidecar's metadata answered ${r.status}: ${r.text}`);
    },
  };
}

