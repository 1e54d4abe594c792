import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { validateObject, KINDS, type KindInfo } from '../api/validation.js';
import type { KubeObject } from '../api/types.js';
import type { ObjectRef } from '../store/types.js';
import { CrossmeshError } from '../errors.js';
import { readBody } from '../util/http.js';
import type { ResourcePath } from '../api/wire.js';
import { sendJson } from './status.js';
import { getObject, listOrWatch } from './read.js';
import type { HandlerContext } from './context.js';
import { notFound } from './refusals.js';

export type { HandlerContext };

export const NAMESPACES_KEY = 'core/namespaces';

/** Dispatches one authenticated resource request. Throws CrossmeshError for every refusal. */
export async function handleResource(ctx: HandlerContext, req: IncomingMessage, res: ServerResponse, url: URL, p: ResourcePath): Promise<void> {
  const method = req.method ?? 'GET';
  if (p.subresource === 'status' && !p.kind.hasStatus) {
    throw new CrossmeshError('CM_ERR_NOT_FOUND', `${p.kind.kind} has no status subresource`);
  }
  if (p.name === undefined) {
    if (method === 'GET') return listOrWatch(ctx, req, res, url, p);
    if (method === 'POST') return sendJson(res, 201, create(ctx, p, await readObject(ctx, req, p)));
    throw methodNotAllowed(method, 'a collection', 'GET, POST');
  }
  const ref = refOf(p, p.name);
  switch (method) {
    case 'GET':
      return getObject(ctx, req, res, p, ref);
    case 'PUT': {
      const body = await readObject(ctx, req, p);
      return sendJson(res, 200, replace(ctx, p, ref, body));
    }
    case 'PATCH': {
      const result = await patch(ctx, req, p, ref);
      return sendJson(res, result.created ? 201 : 200, result.object);
    }
    case 'DELETE': {
      if (p.subresource) throw methodNotAllowed(method, 'the status subresource', 'GET, PUT, PATCH');
      return sendJson(res, 200, remove(ctx, p, ref));
    }
    default:
      throw methodNotAllowed(method, 'an object', 'GET, PUT, PATCH, DELETE');
  }
}

function create(ctx: HandlerContext, p: ResourcePath, body: KubeObject): KubeObject {
  const obj = validateFor(p, body);
  if (p.name !== undefined && p.name !== obj.metadata.name) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `the name in the body (${obj.metadata.name}) does not match the name in the URL (${p.name})`);
  }
  requireNamespace(ctx, obj);
  return ctx.store.create(refOf(p, obj.metadata.name, obj.metadata.namespace), obj);
}

function replace(ctx: HandlerContext, p: ResourcePath, ref: ObjectRef, body: KubeObject): KubeObject {
  if (p.subresource === 'status') {
    const current = ctx.store.get(ref);
    if (!current) throw notFound(p);
    // Status writes do not re-validate the spec: controllers write status only.
    const next: KubeObject = { ...current, status: body.status };
    return ctx.store.update(ref, next, { statusOnly: true, expectedResourceVersion: body.metadata?.resourceVersion });
  }
  const obj = validateFor(p, body);
  checkNameMatches(p, obj);
  return ctx.store.update(ref, obj, { expectedResourceVersion: obj.metadata.resourceVersion });
}

async function patch(ctx: HandlerContext, req: IncomingMessage, p: ResourcePath, ref: ObjectRef): Promise<{ object: KubeObject; created: boolean }> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim();
  const raw = await readBody(req, ctx.maxBodyBytes);
  const doc = parseBody(raw, type);
  const current = ctx.store.get(ref);
  if (type === 'application/apply-patch+yaml' || type === 'application/apply-patch+json') {
    // Server-side apply, simplified: the applied object becomes the desired state (create or
    // replace), the stored status is kept. Field ownership is not tracked (one manager).
    const body = withTypeMeta(doc, p);
    if (!current) {
      const obj = validateFor(p, body);
      checkNameMatches(p, obj);
      requireNamespace(ctx, obj);
      return { object: ctx.store.create(ref, obj), created: true };
    }
    if (p.subresource === 'status') {
      return { object: ctx.store.update(ref, { ...current, status: body.status }, { statusOnly: true }), created: false };
    }
    const obj = validateFor(p, body);
    checkNameMatches(p, obj);
    return { object: ctx.store.update(ref, obj, { expectedResourceVersion: obj.metadata.resourceVersion }), created: false };
  }
  if (type === 'application/merge-patch+json' || type === 'application/strategic-merge-patch+json') {
    // Strategic merge patch is treated as a JSON merge patch (RFC 7386): lists are replaced whole.
    if (!current) throw notFound(p);
    const merged = mergePatch(current, doc) as KubeObject;
    if (p.subresource === 'status') {
      return { object: ctx.store.update(ref, { ...current, status: merged.status }, { statusOnly: true }), created: false };
    }
    const obj = validateFor(p, merged);
    checkNameMatches(p, obj);
    return { object: ctx.store.update(ref, obj, { expectedResourceVersion: (doc as KubeObject)?.metadata?.resourceVersion }), created: false };
  }
  throw new CrossmeshError('CM_ERR_UNSUPPORTED_MEDIA', `PATCH content-type "${type}" is not supported; use application/apply-patch+yaml or application/merge-patch+json`);
}

function remove(ctx: HandlerContext, p: ResourcePath, ref: ObjectRef): KubeObject {
  if (!ctx.store.get(ref)) throw notFound(p);
  if (p.kind.storageKey === NAMESPACES_KEY) {
    if (ref.name === 'default') throw new CrossmeshError('CM_ERR_FORBIDDEN', 'namespace "default" cannot be deleted');
    // Deleting a namespace deletes what is in it (Kubernetes does this asynchronously; here it is immediate).
    for (const kind of KINDS) {
      if (!kind.namespaced) continue;
      for (const obj of ctx.store.list({ storageKey: kind.storageKey, namespace: ref.name }).items) {
        ctx.store.delete({ storageKey: kind.storageKey, namespace: ref.name, name: obj.metadata.name });
      }
    }
  }
  return ctx.store.delete(ref);
}

async function readObject(ctx: HandlerContext, req: IncomingMessage, p: ResourcePath): Promise<KubeObject> {
  const type = (req.headers['content-type'] ?? 'application/json').split(';')[0].trim();
  const raw = await readBody(req, ctx.maxBodyBytes);
  return withTypeMeta(parseBody(raw, type), p);
}

function parseBody(raw: Buffer, type: string): unknown {
  const text = raw.toString('utf8');
  if (text.trim() === '') throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'the request body is empty; send the object as JSON or YAML');
  try {
    return type.endsWith('yaml') ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `the request body is not valid ${type.endsWith('yaml') ? 'YAML' : 'JSON'}: ${(err as Error).message}`, { cause: err });
  }
}

/** Fills apiVersion/kind/namespace from the URL when the body leaves them out; refuses a mismatch. */
function withTypeMeta(doc: unknown, p: ResourcePath): KubeObject {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'the request body must be a single object');
  }
  const obj = { ...(doc as KubeObject) };
  const urlApiVersion = p.group ? `${p.group}/${p.version}` : p.version;
  obj.apiVersion ??= urlApiVersion;
  obj.kind ??= p.kind.kind;
  if (obj.kind !== p.kind.kind) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `the body is a ${String(obj.kind)} but the URL addresses ${p.kind.plural}`);
  }
  const meta = { ...(obj.metadata ?? {}) } as KubeObject['metadata'];
  if (p.kind.namespaced) {
    if (meta.namespace && p.namespace && meta.namespace !== p.namespace) {
      throw new CrossmeshError('CM_ERR_BAD_REQUEST', `the namespace of the body (${meta.namespace}) does not match the namespace of the URL (${p.namespace})`);
    }
    meta.namespace ??= p.namespace;
    if (!meta.namespace) throw new CrossmeshError('CM_ERR_BAD_REQUEST', `${p.kind.kind} is namespaced: use a /namespaces/{ns}/ path or set metadata.namespace`);
  }
  obj.metadata = meta;
  return obj;
}

function validateFor(p: ResourcePath, body: KubeObject): KubeObject {
  const obj = validateObject(body);
  if (obj.kind !== p.kind.kind) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `the body is a ${obj.kind} but the URL addresses ${p.kind.plural}`);
  }
  return obj;
}

function checkNameMatches(p: ResourcePath, obj: KubeObject): void {
  if (p.name !== undefined && obj.metadata.name !== p.name) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `the name in the body (${obj.metadata.name}) does not match the name in the URL (${p.name})`);
  }
}

function requireNamespace(ctx: HandlerContext, obj: KubeObject): void {
  const ns = obj.metadata.namespace;
  if (!ns) return;
  if (!ctx.store.get({ storageKey: NAMESPACES_KEY, name: ns })) {
    throw new CrossmeshError('CM_ERR_NOT_FOUND', `namespace "${ns}" not found; create it first with \`crossmesh create namespace ${ns}\``, { kind: 'Namespace', name: ns });
  }
}

function refOf(p: ResourcePath, name: string, namespace = p.namespace): ObjectRef {
  return { storageKey: p.kind.storageKey, namespace: p.kind.namespaced ? namespace : undefined, name };
}

function methodNotAllowed(method: string, what: string, allowed: string): CrossmeshError {
  return new CrossmeshError('CM_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed on ${what}; allowed: ${allowed}`);
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export type { KindInfo };
