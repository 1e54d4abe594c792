import type { IncomingMessage, ServerResponse } from 'node:http';
import { KINDS, type KindInfo } from '../api/index.js';
import { CrossmeshError } from '../errors.js';
import { buildAggregatedDiscovery } from './aggregated-discovery.js';
import { negotiate, notAcceptable } from './negotiate.js';
import { sendJson } from './status.js';

const DISCOVERY_TYPES = 'application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList, application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList';

export interface Discovery {
  /** Answers a discovery path (`/api`, `/apis`, `/api/v1`, `/apis/{g}/{v}`); false when `path` is none. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): boolean;
}

/**
 * The discovery endpoints, every document built once at start: the plain documents below and,
 * for `/api` and `/apis` when Accept asks for it, aggregated discovery (aggregated-discovery.ts)
 * with the Content-Type kubectl checks (`...;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`).
 */
export function makeDiscovery(): Discovery {
  const docs = buildDiscovery();
  const aggregated = buildAggregatedDiscovery();
  return {
    serve(req, res, rawPath) {
      const path = rawPath.replace(/\/$/, '');
      const doc = docs.get(path);
      if (!doc) return false;
      if (req.method !== 'GET') throw new CrossmeshError('CM_ERR_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`);
      if (path !== '/api' && path !== '/apis') {
        sendJson(res, 200, doc);
        return true;
      }
      const fmt = negotiate(req.headers.accept, 'discovery');
      if (!fmt) {
        sendJson(res, 406, notAcceptable(req.headers.accept ?? '', DISCOVERY_TYPES));
        return true;
      }
      res.setHeader('vary', 'Accept');
      if (fmt.as !== 'APIGroupDiscoveryList') {
        sendJson(res, 200, doc);
        return true;
      }
      const body = aggregated.body(path, fmt.apiVersion.endsWith('v2beta1') ? 'v2beta1' : 'v2');
      res.writeHead(200, { 'content-type': fmt.contentType, 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return true;
    },
  };
}

/**
 * Kubernetes discovery documents (/api, /api/v1, /apis, /apis/{group}/{version}), computed
 * once at start: they let kubectl and @kubernetes/client-node find our resources.
 */
export function buildDiscovery(): Map<string, unknown> {
  const docs = new Map<string, unknown>();
  const byGroupVersion = new Map<string, KindInfo[]>();
  for (const k of KINDS) {
    for (const g of [k.group, ...k.groupAliases]) {
      const gv = g ? `${g}/${k.version}` : k.version;
      const list = byGroupVersion.get(gv) ?? [];
      list.push(k);
      byGroupVersion.set(gv, list);
    }
  }
  const verbs = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
  const groups: unknown[] = [];
  for (const [gv, kinds] of byGroupVersion) {
    const resources = kinds.flatMap((k) => {
      const main = { name: k.plural, singularName: k.singular, namespaced: k.namespaced, kind: k.kind, verbs, shortNames: k.shortNames };
      const subs: unknown[] = [];
      if (k.hasStatus) subs.push({ name: `${k.plural}/status`, singularName: '', namespaced: k.namespaced, kind: k.kind, verbs: ['get', 'patch', 'update'] });
      // The TokenRequest subresource, listed as Kubernetes lists it (`kubectl create token` looks for it).
      if (k.kind === 'ServiceAccount') subs.push({ name: 'serviceaccounts/token', singularName: '', namespaced: true, group: 'authentication.k8s.io', version: 'v1', kind: 'TokenRequest', verbs: ['create'] });
      return [main, ...subs];
    });
    const doc = { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv, resources };
    if (gv.includes('/')) {
      docs.set(`/apis/${gv}`, doc);
      const [group, version] = gv.split('/');
      groups.push({ name: group, versions: [{ groupVersion: gv, version }], preferredVersion: { groupVersion: gv, version } });
    } else {
      docs.set(`/api/${gv}`, doc);
    }
  }
  // The identity API (/apis/identity.crossmesh.io/v1/...: trust bundle, workload certificates,
  // intermediate CA) is non-resource paths and not listed: kubectl's discovery fails on a group
  // without resources ("received empty response"), and it must never try to list anything there.
  docs.set('/api', { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
  docs.set('/apis', { kind: 'APIGroupList', apiVersion: 'v1', groups });
  return docs;
}
