/**
 * Metadata bookkeeping shared by every backend: what a create/update/delete turns the caller's
 * object into. Pure functions, no storage: the backends only persist what these return, so the
 * memory and SQLite stores cannot drift apart in behaviour.
 */
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { CrossmeshError } from '../errors.js';
import type { KubeObject, ObjectMeta } from '../api/types.js';
import { describeRef } from './keys.js';
import type { ObjectRef } from './types.js';

/**
 * Deep copy through JSON. Besides isolating the store from the caller's object, this drops
 * `undefined` members, so `{spec: undefined}` and `{}` compare equal and an object read back
 * from SQLite is deep-equal to the one that was written (no-op detection relies on that).
 */
export function normalize(obj: KubeObject): KubeObject {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'a resource must be a JSON object');
  }
  const copy = JSON.parse(JSON.stringify(obj)) as KubeObject;
  if (copy.metadata === null || typeof copy.metadata !== 'object' || Array.isArray(copy.metadata)) {
    copy.metadata = {} as ObjectMeta;
  }
  return copy;
}

/** Name and namespace always come from the ref: the URL path wins over the body. */
function withIdentity(meta: ObjectMeta, ref: ObjectRef): ObjectMeta {
  const out: ObjectMeta = { ...meta, name: ref.name };
  if (ref.namespace) out.namespace = ref.namespace;
  else delete out.namespace;
  return out;
}

/** A copy of obj carrying resourceVersion = revision (fresh metadata object; obj is not touched). */
export function stamp(obj: KubeObject, revision: number): KubeObject {
  return { ...obj, metadata: { ...obj.metadata, resourceVersion: String(revision) } };
}

export function buildCreated(ref: ObjectRef, input: KubeObject, revision: number): KubeObject {
  const obj = normalize(input);
  const meta = withIdentity(obj.metadata, ref);
  meta.uid = randomUUID();
  meta.creationTimestamp = new Date().toISOString();
  meta.generation = 1;
  return stamp({ ...obj, metadata: meta }, revision);
}

/** Everything that counts for `generation`: all top-level fields except metadata and status. */
function specPart(obj: KubeObject): Record<string, unknown> {
  const { metadata: _m, status: _s, ...rest } = obj;
  return rest;
}

/**
 * The object an update would store, still carrying the stored resourceVersion; undefined when
 * the update changes nothing (the caller then skips the revision and the event).
 */
export function buildUpdated(ref: ObjectRef, stored: KubeObject, input: KubeObject, statusOnly: boolean): KubeObject | undefined {
  const obj = normalize(input);
  let next: KubeObject;
  if (statusOnly) {
    // The status subresource: only status comes from the caller, the rest stays as stored.
    next = { ...stored, metadata: { ...stored.metadata } };
    if (obj.status === undefined) delete next.status;
    else next.status = obj.status;
  } else {
    // A normal update never writes status (controllers own it through statusOnly writes).
    next = { ...obj };
    if (stored.status === undefined) delete next.status;
    else next.status = stored.status;
    const meta = withIdentity(obj.metadata, ref);
    meta.uid = stored.metadata.uid;
    meta.creationTimestamp = stored.metadata.creationTimestamp;
    meta.resourceVersion = stored.metadata.resourceVersion;
    const generation = stored.metadata.generation ?? 1;
    meta.generation = isDeepStrictEqual(specPart(next), specPart(stored)) ? generation : generation + 1;
    next.metadata = meta;
  }
  return isDeepStrictEqual(next, stored) ? undefined : next;
}

/** The DELETED event's object: the object as last stored, with the delete's revision. */
export function buildDeleted(stored: KubeObject, revision: number): KubeObject {
  return stamp(stored, revision);
}

/** Optimistic concurrency: fail unless the stored object is the version the caller read. */
export function checkExpectedVersion(ref: ObjectRef, stored: KubeObject, expected: string | undefined, verb: string): void {
  if (expected === undefined || expected === stored.metadata.resourceVersion) return;
  throw new CrossmeshError(
    'CM_ERR_CONFLICT',
    `cannot ${verb} ${describeRef(ref)}: it has resourceVersion ${stored.metadata.resourceVersion} but the request expected ${expected}; the object changed since it was read, get it again and retry`,
  );
}

export function notFound(ref: ObjectRef): CrossmeshError {
  return new CrossmeshError('CM_ERR_NOT_FOUND', `${describeRef(ref)} not found`);
}

export function alreadyExists(ref: ObjectRef): CrossmeshError {
  return new CrossmeshError('CM_ERR_ALREADY_EXISTS', `${describeRef(ref)} already exists`);
}
