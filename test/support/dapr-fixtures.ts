/** Shared setup of the src/dapr tests (not a test file itself): an in-process cluster, a namespace, objects applied through the API. */
import { kindFor } from '../../src/api/index.js';
import type { KubeObject } from '../../src/api/types.js';
import { ApiClient } from '../../src/client/api-client.js';
import { startCluster, type RunningCluster } from '../../src/cluster/cluster.js';

export const NS = 'dapr-test';
export const COMPONENT = kindFor('dapr.io/v1alpha1', 'Component');
export const SECRET = kindFor('v1', 'Secret');
export const RESILIENCY = kindFor('dapr.io/v1alpha1', 'Resiliency');

export async function clusterWithNamespace(name = 'cluster-1'): Promise<{ cluster: RunningCluster; client: ApiClient }> {
  const cluster = await startCluster({ name, dataDir: null });
  const client = new ApiClient(cluster.endpoint);
  await client.create(kindFor('v1', 'Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  return { cluster, client };
}

export function component(name: string, type: string, metadata: Array<{ name: string; value?: string; secretKeyRef?: { name: string; key?: string } }> = [], extra: Partial<KubeObject> = {}): KubeObject {
  return { apiVersion: 'dapr.io/v1alpha1', kind: 'Component', metadata: { name, namespace: NS }, spec: { type, version: 'v1', metadata }, ...extra };
}

export function secret(name: string, data: Record<string, string>): KubeObject {
  const enc: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) enc[k] = Buffer.from(v).toString('base64');
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, data: enc };
}

/** Every state store crossmesh has, as the SDK suites (HTTP and gRPC) drive each of them. */
export const SDK_STORES = [
  { name: 'statestore', type: 'state.sqlite', query: true, etags: 'uuid' },
  { name: 'memstore', type: 'state.in-memory', query: true, etags: 'uuid' },
  { name: 'redisstore', type: 'state.redis', query: false, etags: 'version' },
] as const;

/**
 * The Components and Secrets of the SDK suites in namespace NS: the three state stores of
 * SDK_STORES (state.redis on `redis`, its password through a secretKeyRef), lock.sqlite
 * `lockstore`, and the secrets `db` and `api` the secrets tests read.
 */
export async function seedSdkComponents(client: ApiClient, redis: { address: string; password: string }): Promise<void> {
  await client.create(SECRET, secret('redis', { 'redis-password': redis.password }));
  await client.create(COMPONENT, component('statestore', 'state.sqlite'));
  await client.create(COMPONENT, component('memstore', 'state.in-memory'));
  await client.create(COMPONENT, component('redisstore', 'state.redis', [{ name: 'redisHost', value: redis.address }, { name: 'redisPassword', secretKeyRef: { name: 'redis', key: 'redis-password' } }]));
  await client.create(COMPONENT, component('lockstore', 'lock.sqlite'));
  await client.create(SECRET, secret('db', { user: 'admin', password: 'pw' }));
  await client.create(SECRET, secret('api', { key: 'k-123' }));
}

export async function eventually<T>(check: () => T | undefined | false | Promise<T | undefined | false>, ms = 6000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve().then(check).catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface HttpResult { status: number; headers: Headers; text: string; json: any }

export async function http(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' || Buffer.isBuffer(body) ? (body as string) : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let json: any;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}
