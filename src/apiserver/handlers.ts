import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { KINDS, type KindInfo } from '../api/validation.js';
import type { KubeObject } from '../api/types.js';
import { isPlainObject } from '../api/meta.js';
import type { ObjectRef } from '../store/types.js';
import { buildCreated, buildUpdated, checkExpectedVersion } from '../store/metadata.js';
import { CrossmeshError } from '../errors.js';
import { readBody } from '../util/http.js';
import type { ResourcePath } from '../api/wire.js';
import { sendJson } from './status.js';
import { getObject, listOrWatch } from './read.js';
import type { HandlerContext } from './context.js';
import { alreadyExists, modified, notFound } from './refusals.js';
import { parseDeleteOptions, parseWriteOptions, type WriteOptions } from './write-options.js';
import { checkUnknownFields, validateForWrite } from './field-validation.js';
import { jsonPatch, mergePatch, strategicMergePatch, strategiesFor } from './patch.js';
import { applyMerge, serverSideApply } from './apply.js';
import { baseManaged, recordUpdate, typeInfoFor, type FullMeta, type WriteContext } from './managed-fields.js';

// The write side: create (POST), replace (PUT), patch (PATCH: merge, JSON, strategic merge,
// server-side apply), delete (DELETE), each with Kubernetes' query parameters (write-options.ts),
// unknown-field handling (field-validation.ts), managedFields (managed-fields.ts, apply.ts) and
// dryRun (the store's own metadata bookkeeping, previewed: nothing stored, no watch event).

export type { HandlerContext };
export { mergePatch };

export const NAMESPACES_KEY = 'core/namespaces';

const MERGE = 'application/merge-patch+json';
const JSON_PATCH = 'application/json-patch+json';
const STRATEGIC = 'application/strategic-merge-patch+json';
const APPLY_YAML = 'application/apply-patch+yaml';
const APPLY_JSON = 'application/apply-patch+json';

/** Dispatches one authenticated resource request. Throws CrossmeshError for every refusal. */
export async function handleResource(ctx: HandlerContext, req: IncomingMessage, res: ServerResponse, url: URL, p: ResourcePath): Promise<void> {
  const method = req.method ?? 'GET';
  if (p.subresource === 'status' && !p.kind.hasStatus) {
    throw new CrossmeshError('CM_ERR_NOT_FOUND', `${p.kind.kind} has no status subresource`);
  }
  if (p.name === undefined) {
    if (method === 'GET') return listOrWatch(ctx, req, res, url, p);
    if (method === 'POST') {
      if (p.subresource) throw methodNotAllowed(method, 'the status subresource', 'GET, PUT, PATCH');
      const out = await create(ctx, req, url, p);
      return respond(res, 201, out);
    }
    throw methodNotAllowed(method, 'a collection', 'GET, POST');
  }
  const ref = refOf(p, p.name);
  switch (method) {
    case 'GET':
      return getObject(ctx, req, res, p, ref);
    case 'PUT':
      return respond(res, 200, await replace(ctx, req, url, p, ref));
    case 'PATCH': {
      const out = await patch(ctx, req, url, p, ref);
      return respond(res, out.created ? 201 : 200, out);
    }
    case 'DELETE': {
      if (p.subresource) throw methodNotAllowed(method, 'the status subresource', 'GET, PUT, PATCH');
      return sendJson(res, 200, await remove(ctx, req, url, p, ref));
    }
    default:
      throw methodNotAllowed(method, 'an object', 'GET, PUT, PATCH, DELETE');
  }
}

interface WriteResult {
  object: KubeObject;
  warnings: string[];
  created?: boolean;
}

/** The answer of a write, with its warnings as `Warning: 299 - "..."` headers (kubectl prints them). */
function respond(res: ServerResponse, status: number, out: WriteResult): void {
  if (out.warnings.length > 0) res.setHeader('Warning', out.warnings.map((w) => `299 - ${JSON.stringify(w)}`));
  sendJson(res, status, out.object);
}

function apiVersionOf(p: ResourcePath): string {
  return p.group ? `${p.group}/${p.version}` : p.version;
}

async function writeContext(p: ResourcePath, opts: WriteOptions, scope: 'main' | 'status'): Promise<WriteContext> {
  return { manager: opts.manager, apiVersion: apiVersionOf(p), scope, ti: await typeInfoFor(p.kind) };
}

// ---- create --------------------------------------------------------------------------------

async function create(ctx: HandlerContext, req: IncomingMessage, url: URL, p: ResourcePath): Promise<WriteResult> {
  const opts = parseWriteOptions(url.searchParams, req, 'create');
  const body = withTypeMeta(await readDocument(ctx, req, 'application/json'), p);
  prepareInput(body, p, true);
  const meta = body.metadata as FullMeta;
  if (!meta.name && typeof meta.generateName === 'string' && meta.generateName !== '') meta.name = generateName(meta.generateName);
  const warnings = checkUnknownFields(p, body, undefined, opts.fieldValidation);
  const obj = validateForWrite(p, body);
  requireNamespace(ctx, obj);
  const w = await writeContext(p, opts, 'main');
  setManaged(obj, recordUpdate(undefined, obj, baseManaged(undefined, (obj.metadata as FullMeta).managedFields), w));
  return { object: storeCreate(ctx, p, refOf(p, obj.metadata.name, obj.metadata.namespace), obj, opts.dryRun), warnings };
}

const NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

/** Kubernetes' generateName: the prefix and five random characters. */
function generateName(prefix: string): string {
  const bytes = randomBytes(5);
  let out = prefix.slice(0, 58);
  for (const b of bytes) out += NAME_CHARS[b % NAME_CHARS.length];
  return out;
}

// ---- replace -------------------------------------------------------------------------------

async function replace(ctx: HandlerContext, req: IncomingMessage, url: URL, p: ResourcePath, ref: ObjectRef): Promise<WriteResult> {
  const opts = parseWriteOptions(url.searchParams, req, 'update');
  const body = withTypeMeta(await readDocument(ctx, req, 'application/json'), p);
  checkNameMatches(p, body);
  const live = ctx.store.get(ref);
  if (!live) throw notFound(p);
  if (p.subresource === 'status') {
    // Status writes do not re-validate the spec: controllers write status only.
    const next: KubeObject = { ...live, status: body.status };
    return { object: storeUpdate(ctx, p, ref, next, { statusOnly: true, expected: body.metadata?.resourceVersion, dryRun: opts.dryRun }), warnings: [] };
  }
  prepareInput(body, p, false);
  const warnings = checkUnknownFields(p, body, live, opts.fieldValidation);
  const obj = validateForWrite(p, body);
  const w = await writeContext(p, opts, 'main');
  setManaged(obj, recordUpdate(live, obj, baseManaged(live, (obj.metadata as FullMeta).managedFields), w));
  return { object: storeUpdate(ctx, p, ref, obj, { expected: obj.metadata.resourceVersion, dryRun: opts.dryRun }), warnings };
}

// ---- patch ---------------------------------------------------------------------------------

function patchTypesOf(p: ResourcePath): string[] {
  const core = p.group === '' || p.group.endsWith('.k8s.io');
  return [JSON_PATCH, MERGE, ...(core ? [STRATEGIC] : []), APPLY_YAML];
}

function unsupportedPatch(p: ResourcePath): CrossmeshError {
  return new CrossmeshError('CM_ERR_UNSUPPORTED_MEDIA', `the body of the request was in an unknown format - accepted media types include: ${patchTypesOf(p).join(', ')}`);
}

async function patch(ctx: HandlerContext, req: IncomingMessage, url: URL, p: ResourcePath, ref: ObjectRef): Promise<WriteResult> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type === APPLY_YAML || type === APPLY_JSON) return apply(ctx, req, url, p, ref);
  if (!patchTypesOf(p).includes(type)) throw unsupportedPatch(p);
  const opts = parseWriteOptions(url.searchParams, req, 'patch');
  const doc = await readDocument(ctx, req, type);
  const live = ctx.store.get(ref);
  if (!live) throw notFound(p);
  let patched: unknown;
  if (type === MERGE) {
    if (!isPlainObject(doc)) throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'a merge patch (application/merge-patch+json) must be a JSON object');
    patched = mergePatch(live, doc);
  } else if (type === JSON_PATCH) {
    patched = jsonPatch(live, doc);
  } else {
    patched = strategicMergePatch(live, doc, await strategiesFor(p.kind.kind));
  }
  if (!isPlainObject(patched)) throw new CrossmeshError('CM_ERR_INVALID', 'the patched object is not an object', { problems: [{ field: '', message: 'must be an object' }] });
  const next = withTypeMeta(patched, p);
  const expected = typeof next.metadata.resourceVersion === 'string' ? next.metadata.resourceVersion : undefined;
  if (p.subresource === 'status') {
    const statusNext: KubeObject = { ...live, status: next.status };
    return { object: storeUpdate(ctx, p, ref, statusNext, { statusOnly: true, expected, dryRun: opts.dryRun }), warnings: [] };
  }
  checkNameMatches(p, next);
  prepareInput(next, p, false);
  const warnings = checkUnknownFields(p, next, live, opts.fieldValidation);
  const obj = validateForWrite(p, next);
  const w = await writeContext(p, opts, 'main');
  setManaged(obj, recordUpdate(live, obj, baseManaged(live, (obj.metadata as FullMeta).managedFields), w));
  return { object: storeUpdate(ctx, p, ref, obj, { expected, dryRun: opts.dryRun }), warnings };
}

/** Server-side apply: create or merge with field ownership (apply.ts). */
async function apply(ctx: HandlerContext, req: IncomingMessage, url: URL, p: ResourcePath, ref: ObjectRef): Promise<WriteResult> {
  const opts = parseWriteOptions(url.searchParams, req, 'apply');
  const doc = await readDocument(ctx, req, APPLY_YAML);
  const config = withTypeMeta(doc, p);
  if (config.metadata.name === undefined) config.metadata.name = ref.name;
  checkNameMatches(p, config);
  const live = ctx.store.get(ref);
  if (p.subresource === 'status') {
    if (!live) throw notFound(p);
    const w = await writeContext(p, opts, 'status');
    const statusNext: KubeObject = { ...live, status: applyMerge(live.status, config.status, 'status', w.ti) };
    return { object: storeUpdate(ctx, p, ref, statusNext, { statusOnly: true, dryRun: opts.dryRun }), warnings: [] };
  }
  const warnings = checkUnknownFields(p, config, live, opts.fieldValidation);
  const w = await writeContext(p, opts, 'main');
  const merged = serverSideApply(live, config, { ...w, force: opts.force });
  prepareInput(merged, p, !live);
  const obj = validateForWrite(p, merged);
  if (!live) {
    requireNamespace(ctx, obj);
    return { object: storeCreate(ctx, p, ref, obj, opts.dryRun), warnings, created: true };
  }
  return { object: storeUpdate(ctx, p, ref, obj, { expected: config.metadata.resourceVersion, dryRun: opts.dryRun }), warnings };
}

// ---- delete --------------------------------------------------------------------------------

async function remove(ctx: HandlerContext, req: IncomingMessage, url: URL, p: ResourcePath, ref: ObjectRef): Promise<KubeObject> {
  const raw = (await readBody(req, ctx.maxBodyBytes)).toString('utf8');
  let body: unknown;
  if (raw.trim() !== '') {
    try {
      body = JSON.parse(raw);
    } catch (err) {
      throw new CrossmeshError('CM_ERR_BAD_REQUEST', `the DELETE body is not valid JSON (a DeleteOptions object): ${(err as Error).message}`, { cause: err });
    }
  }
  const opts = parseDeleteOptions(url.searchParams, body);
  const live = ctx.store.get(ref);
  if (!live) throw notFound(p);
  if (opts.preconditions?.uid !== undefined && opts.preconditions.uid !== live.metadata.uid) {
    throw new CrossmeshError('CM_ERR_CONFLICT', `Precondition failed: UID in precondition: ${opts.preconditions.uid}, UID in object meta: ${live.metadata.uid ?? ''}`, { kind: p.kind.kind, name: ref.name });
  }
  const expected = opts.preconditions?.resourceVersion;
  if (expected !== undefined && expected !== live.metadata.resourceVersion) {
    throw new CrossmeshError('CM_ERR_CONFLICT', `Precondition failed: ResourceVersion in precondition: ${expected}, ResourceVersion in object meta: ${live.metadata.resourceVersion ?? ''}`, { kind: p.kind.kind, name: ref.name });
  }
  if (p.kind.storageKey === NAMESPACES_KEY) {
    if (ref.name === 'default') throw new CrossmeshError('CM_ERR_FORBIDDEN', 'namespaces "default" is forbidden: this namespace may not be deleted');
    if (opts.propagationPolicy === 'Orphan') {
      throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'propagationPolicy: Invalid value: "Orphan": a namespace is always deleted with everything in it; use Background or Foreground');
    }
  }
  if (opts.dryRun) return live;
  if (p.kind.storageKey === NAMESPACES_KEY) {
    // Deleting a namespace deletes what is in it (Kubernetes does this asynchronously; here it is immediate).
    for (const kind of KINDS) {
      if (!kind.namespaced) continue;
      for (const obj of ctx.store.list({ storageKey: kind.storageKey, namespace: ref.name }).items) {
        ctx.store.delete({ storageKey: kind.storageKey, namespace: ref.name, name: obj.metadata.name });
      }
    }
  }
  return ctx.store.delete(ref, { expectedResourceVersion: expected });
}

// ---- the store, or its preview under dryRun -------------------------------------------------

function storeCreate(ctx: HandlerContext, p: ResourcePath, ref: ObjectRef, obj: KubeObject, dryRun: boolean): KubeObject {
  if (dryRun) {
    if (ctx.store.get(ref)) throw alreadyExists(p, ref.name);
    const preview = buildCreated(ref, obj, ctx.store.revision() + 1);
    // Nothing was stored: no resourceVersion, as Kubernetes answers a dry-run create.
    delete preview.metadata.resourceVersion;
    return preview;
  }
  try {
    return ctx.store.create(ref, obj);
  } catch (err) {
    if (err instanceof CrossmeshError && err.code === 'CM_ERR_ALREADY_EXISTS') throw alreadyExists(p, ref.name);
    throw err;
  }
}

function storeUpdate(ctx: HandlerContext, p: ResourcePath, ref: ObjectRef, obj: KubeObject, o: { statusOnly?: boolean; expected?: string; dryRun: boolean }): KubeObject {
  if (o.dryRun) {
    const stored = ctx.store.get(ref);
    if (!stored) throw notFound(p, ref.name);
    try {
      checkExpectedVersion(ref, stored, o.expected, 'update');
    } catch (err) {
      throw modified(p, ref.name, err);
    }
    return buildUpdated(ref, stored, obj, o.statusOnly === true) ?? stored;
  }
  try {
    return ctx.store.update(ref, obj, { statusOnly: o.statusOnly, expectedResourceVersion: o.expected });
  } catch (err) {
    if (err instanceof CrossmeshError && err.code === 'CM_ERR_CONFLICT') throw modified(p, ref.name, err);
    if (err instanceof CrossmeshError && err.code === 'CM_ERR_NOT_FOUND') throw notFound(p, ref.name);
    throw err;
  }
}

// ---- bodies --------------------------------------------------------------------------------

async function readDocument(ctx: HandlerContext, req: IncomingMessage, defaultType: string): Promise<unknown> {
  const type = (req.headers['content-type'] ?? defaultType).split(';')[0].trim().toLowerCase() || defaultType;
  const raw = await readBody(req, ctx.maxBodyBytes);
  // Kubernetes protobuf (kubectl ≥ 1.32's typed writes): decoded by protobuf-body.ts, loaded on first use.
  if (type === 'application/vnd.kubernetes.protobuf') return (await import('./protobuf-body.js')).decodeProtobufRequest(raw, req.url);
  return parseBody(raw, type);
}

function parseBody(raw: Buffer, type: string): unknown {
  const text = raw.toString('utf8');
  if (text.trim() === '') throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'the request body is empty; send the object as JSON or YAML');
  const yaml = type.endsWith('yaml');
  try {
    return yaml ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `the request body is not valid ${yaml ? 'YAML' : 'JSON'}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * What clients send that is not part of the object: Go's zero times as null, empty
 * managedFields, `status: {}`. On create a Namespace starts Active, as in Kubernetes.
 */
function prepareInput(obj: KubeObject, p: ResourcePath, creating: boolean): void {
  const meta = obj.metadata as unknown as Record<string, unknown>;
  for (const f of ['creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields']) {
    if (meta[f] === null) delete meta[f];
  }
  if (Array.isArray(meta.managedFields) && meta.managedFields.length === 0) delete meta.managedFields;
  const emptyStatus = obj.status === null || (isPlainObject(obj.status) && Object.keys(obj.status).length === 0);
  if (!p.kind.hasStatus && (emptyStatus || obj.status === undefined)) delete obj.status;
  else if (emptyStatus) delete obj.status;
  if (creating && p.kind.storageKey === NAMESPACES_KEY && obj.status === undefined) obj.status = { phase: 'Active' };
}

function setManaged(obj: KubeObject, entries: unknown[]): void {
  const meta = obj.metadata as unknown as Record<string, unknown>;
  if (entries.length > 0) meta.managedFields = entries;
  else delete meta.managedFields;
}

/** Fills apiVersion/kind/namespace from the URL when the body leaves them out; refuses a mismatch. */
function withTypeMeta(doc: unknown, p: ResourcePath): KubeObject {
  if (!isPlainObject(doc)) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'the request body must be a single object');
  }
  const obj = { ...(doc as KubeObject) };
  obj.apiVersion ??= apiVersionOf(p);
  obj.kind ??= p.kind.kind;
  if (obj.kind !== p.kind.kind) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `the body is a ${String(obj.kind)} but the URL addresses ${p.kind.plural}`);
  }
  if (obj.metadata !== undefined && obj.metadata !== null && !isPlainObject(obj.metadata)) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'metadata must be an object');
  }
  const meta = { ...(obj.metadata ?? {}) } as KubeObject['metadata'];
  if (p.kind.namespaced) {
    if (meta.namespace && p.namespace && meta.namespace !== p.namespace) {
      throw new CrossmeshError('CM_ERR_BAD_REQUEST', `the namespace of the provided object does not match the namespace sent on the request (${meta.namespace} vs ${p.namespace})`);
    }
    meta.namespace ??= p.namespace;
    if (!meta.namespace) throw new CrossmeshError('CM_ERR_BAD_REQUEST', `${p.kind.kind} is namespaced: use a /namespaces/{ns}/ path or set metadata.namespace`);
  }
  obj.metadata = meta;
  return obj;
}

function checkNameMatches(p: ResourcePath, obj: KubeObject): void {
  if (p.name !== undefined && obj.metadata?.name !== undefined && obj.metadata.name !== p.name) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${p.name})`);
  }
}

function requireNamespace(ctx: HandlerContext, obj: KubeObject): void {
  const ns = obj.metadata.namespace;
  if (!ns) return;
  if (!ctx.store.get({ storageKey: NAMESPACES_KEY, name: ns })) {
    throw new CrossmeshError('CM_ERR_NOT_FOUND', `namespaces "${ns}" not found; create it first with \`kubectl create namespace ${ns}\` or \`crossmesh create namespace ${ns}\``, { kind: 'Namespace', name: ns });
  }
}

function refOf(p: ResourcePath, name: string, namespace = p.namespace): ObjectRef {
  return { storageKey: p.kind.storageKey, namespace: p.kind.namespaced ? namespace : undefined, name };
}

function methodNotAllowed(method: string, what: string, allowed: string): CrossmeshError {
  return new CrossmeshError('CM_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed on ${what}; allowed: ${allowed}`);
}

export type { KindInfo };
