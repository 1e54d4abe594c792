/**
 * Kubernetes' protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded into the
 * JSON form of the object: kubectl ≥ 1.31 sends its typed writes of built-in kinds this way
 * (`kubectl create namespace`, `create secret generic`, `create serviceaccount`,
 * `create service`). The body is the `k8s\0` magic and a `runtime.Unknown` (typeMeta, raw); raw
 * is the object's message, read with the field numbers of k8s.io/api's generated.proto for the
 * core kinds crossmesh serves. Zero values Go's JSON encoding leaves out (omitempty) are left out
 * here too. Other kinds → 415, naming the JSON media type to use instead.
 */
import { CrossmeshError } from '../errors.js';

export const PROTOBUF = 'application/vnd.kubernetes.protobuf';

type Scalar = 'string' | 'bytes' | 'int' | 'bool' | 'time' | 'intOrString' | 'fieldsV1';
interface MapOf { map: Scalar }
type FieldType = Scalar | MapOf | Msg;
type Field = [name: string, type: FieldType, repeated?: boolean];
interface Msg { [num: number]: Field }

const OWNER_REF: Msg = { 1: ['kind', 'string'], 3: ['name', 'string'], 4: ['uid', 'string'], 5: ['apiVersion', 'string'], 6: ['controller', 'bool'], 7: ['blockOwnerDeletion', 'bool'] };
const MANAGED: Msg = { 1: ['manager', 'string'], 2: ['operation', 'string'], 3: ['apiVersion', 'string'], 4: ['time', 'time'], 6: ['fieldsType', 'string'], 7: ['fieldsV1', 'fieldsV1'], 8: ['subresource', 'string'] };
const OBJECT_META: Msg = {
  1: ['name', 'string'], 2: ['generateName', 'string'], 3: ['namespace', 'string'], 4: ['selfLink', 'string'], 5: ['uid', 'string'],
  6: ['resourceVersion', 'string'], 7: ['generation', 'int'], 8: ['creationTimestamp', 'time'], 9: ['deletionTimestamp', 'time'],
  10: ['deletionGracePeriodSeconds', 'int'], 11: ['labels', { map: 'string' }], 12: ['annotations', { map: 'string' }],
  13: ['ownerReferences', OWNER_REF, true], 14: ['finalizers', 'string', true], 17: ['managedFields', MANAGED, true],
};
const OBJECT_REF: Msg = { 1: ['kind', 'string'], 2: ['namespace', 'string'], 3: ['name', 'string'], 4: ['uid', 'string'], 5: ['apiVersion', 'string'], 6: ['resourceVersion', 'string'], 7: ['fieldPath', 'string'] };
const SERVICE_PORT: Msg = { 1: ['name', 'string'], 2: ['protocol', 'string'], 3: ['port', 'int'], 4: ['targetPort', 'intOrString'], 5: ['nodePort', 'int'], 6: ['appProtocol', 'string'] };
const SERVICE_SPEC: Msg = {
  1: ['ports', SERVICE_PORT, true], 2: ['selector', { map: 'string' }], 3: ['clusterIP', 'string'], 4: ['type', 'string'], 5: ['externalIPs', 'string', true],
  7: ['sessionAffinity', 'string'], 8: ['loadBalancerIP', 'string'], 9: ['loadBalancerSourceRanges', 'string', true], 10: ['externalName', 'string'],
  11: ['externalTrafficPolicy', 'string'], 12: ['healthCheckNodePort', 'int'], 13: ['publishNotReadyAddresses', 'bool'], 17: ['ipFamilyPolicy', 'string'],
  18: ['clusterIPs', 'string', true], 19: ['ipFamilies', 'string', true], 20: ['allocateLoadBalancerNodePorts', 'bool'], 21: ['loadBalancerClass', 'string'],
  22: ['internalTrafficPolicy', 'string'],
};

const KINDS: Record<string, Msg> = {
  Namespace: { 1: ['metadata', OBJECT_META], 2: ['spec', { 1: ['finalizers', 'string', true] }], 3: ['status', { 1: ['phase', 'string'] }] },
  Secret: { 1: ['metadata', OBJECT_META], 2: ['data', { map: 'bytes' }], 3: ['type', 'string'], 4: ['stringData', { map: 'string' }], 5: ['immutable', 'bool'] },
  ServiceAccount: { 1: ['metadata', OBJECT_META], 2: ['secrets', OBJECT_REF, true], 3: ['imagePullSecrets', { 1: ['name', 'string'] }, true], 4: ['automountServiceAccountToken', 'bool'] },
  Service: { 1: ['metadata', OBJECT_META], 2: ['spec', SERVICE_SPEC], 3: ['status', {}] },
};

const TYPE_META: Msg = { 1: ['apiVersion', 'string'], 2: ['kind', 'string'] };
const UNKNOWN: Msg = { 1: ['typeMeta', TYPE_META], 2: ['raw', 'bytes'], 3: ['contentEncoding', 'string'], 4: ['contentType', 'string'] };
const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);
/** Go's zero time.Time in seconds since the epoch: protobuf's form of JSON's `null` timestamps. */
const GO_ZERO_SECONDS = -62135596800;

const bad = (message: string) => new CrossmeshError('CM_ERR_BAD_REQUEST', `the protobuf request body is malformed: ${message}`);

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer, readonly end = buf.length) {}
  varint(): bigint {
    let shift = 0n;
    let out = 0n;
    for (;;) {
      if (this.pos >= this.end) throw bad('truncated varint');
      const b = this.buf[this.pos++];
      out |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return out;
      shift += 7n;
      if (shift > 63n) throw bad('varint too long');
    }
  }
  bytes(): Buffer {
    const len = Number(this.varint());
    if (len < 0 || this.pos + len > this.end) throw bad('length past the end');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw bad(`unsupported wire type ${wire}`);
    if (this.pos > this.end) throw bad('truncated field');
  }
}

function signed64(v: bigint): number {
  return Number(BigInt.asIntN(64, v));
}

function decodeMessage(buf: Buffer, msg: Msg): Record<string, unknown> {
  const r = new Reader(buf);
  const out: Record<string, unknown> = {};
  while (r.pos < r.end) {
    const tag = Number(r.varint());
    const num = tag >>> 3;
    const wire = tag & 7;
    const field = msg[num];
    if (!field) {
      r.skip(wire);
      continue;
    }
    const [name, type, repeated] = field;
    let value: unknown;
    if (typeof type === 'object' && 'map' in type) {
      if (wire !== 2) throw bad(`field ${name}: expected a map entry`);
      const entry = decodeMessage(r.bytes(), { 1: ['key', 'string'], 2: ['value', (type as MapOf).map] });
      const m = (out[name] ??= {}) as Record<string, unknown>;
      m[String(entry.key ?? '')] = entry.value ?? ((type as MapOf).map === 'bytes' ? '' : '');
      continue;
    }
    if (typeof type === 'object') {
      if (wire !== 2) throw bad(`field ${name}: expected a message`);
      value = decodeMessage(r.bytes(), type as Msg);
    } else {
      switch (type) {
        case 'string':
          if (wire !== 2) throw bad(`field ${name}: expected a string`);
          value = r.bytes().toString('utf8');
          break;
        case 'bytes':
          if (wire !== 2) throw bad(`field ${name}: expected bytes`);
          value = Buffer.from(r.bytes()).toString('base64');
          break;
        case 'int':
          if (wire !== 0) throw bad(`field ${name}: expected an integer`);
          value = signed64(r.varint());
          break;
        case 'bool':
          if (wire !== 0) throw bad(`field ${name}: expected a boolean`);
          value = r.varint() !== 0n;
          break;
        case 'time': {
          const t = decodeMessage(r.bytes(), { 1: ['seconds', 'int'], 2: ['nanos', 'int'] });
          const seconds = Number(t.seconds ?? 0);
          value = seconds === GO_ZERO_SECONDS ? null : new Date(seconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
          break;
        }
        case 'intOrString': {
          const v = decodeMessage(r.bytes(), { 1: ['type', 'int'], 2: ['intVal', 'int'], 3: ['strVal', 'string'] });
          value = v.type === 1 ? v.strVal ?? '' : v.intVal ?? 0;
          break;
        }
        case 'fieldsV1': {
          const raw = decodeMessage(r.bytes(), { 1: ['raw', 'bytes'] }).raw as string | undefined;
          try {
            value = raw ? JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) : {};
          } catch {
            throw bad(`field ${name}: not JSON`);
          }
          break;
        }
      }
    }
    if (repeated) ((out[name] ??= []) as unknown[]).push(value);
    else out[name] = value;
  }
  return out;
}

/** Go's JSON omitempty: empty strings, zero numbers, false, null and empty lists/maps left out (messages are kept). */
function omitEmpty(v: Record<string, unknown>, keepEmpty: Set<string>): Record<string, unknown> {
  for (const [k, x] of Object.entries(v)) {
    if (x === '' || x === 0 || x === false || x === null || (Array.isArray(x) && x.length === 0)) {
      if (!keepEmpty.has(k)) delete v[k];
    } else if (Array.isArray(x)) {
      for (const item of x) if (item && typeof item === 'object') omitEmpty(item as Record<string, unknown>, keepEmpty);
    } else if (typeof x === 'object' && k !== 'data' && k !== 'stringData' && k !== 'labels' && k !== 'annotations' && k !== 'selector' && k !== 'fieldsV1') {
      omitEmpty(x as Record<string, unknown>, keepEmpty);
    }
  }
  return v;
}

/** The object of a protobuf request body, in its JSON form. */
export function decodeProtobufObject(body: Buffer): Record<string, unknown> {
  if (body.length < MAGIC.length || !body.subarray(0, MAGIC.length).equals(MAGIC)) throw bad('it does not start with the k8s\\0 magic');
  const unknown = decodeMessage(body.subarray(MAGIC.length), UNKNOWN);
  const tm = (unknown.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  const kind = tm.kind ?? '';
  const msg = KINDS[kind];
  if (!msg || (tm.apiVersion ?? 'v1') !== 'v1') {
    throw new CrossmeshError('CM_ERR_UNSUPPORTED_MEDIA', `${PROTOBUF} is accepted for ${Object.keys(KINDS).join(', ')} (v1) only, not ${kind || 'this object'} (${tm.apiVersion ?? ''}): send application/json`);
  }
  const raw = Buffer.from(String(unknown.raw ?? ''), 'base64');
  const obj = omitEmpty(decodeMessage(raw, msg), new Set(['port']));
  return { apiVersion: tm.apiVersion, kind, ...obj };
}
