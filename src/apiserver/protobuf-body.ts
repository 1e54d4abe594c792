/**
 * Kubernetes protobuf request bodies (`Content-Type: application/vnd.kubernetes.protobuf`)
 * decoded into the JSON object the JSON path would have parsed. client-go's typed clients send
 * built-in kinds this way from kubectl 1.32 on (`kubectl create namespace|secret|serviceaccount|
 * service|token`), and client-go never falls back to JSON for protobuf (only for CBOR), so the
 * server has to read them.
 *
 * The body is the magic `k8s\0` and a `runtime.Unknown` {typeMeta, raw, contentEncoding,
 * contentType} whose raw is the typed message. The messages are in `kubernetes.proto` beside
 * this file (Kubernetes' field numbers and names, only the kinds crossmesh serves), compiled
 * with protobufjs once, on the first protobuf request: this module is imported dynamically by
 * its callers, so a cluster process that never sees protobuf never loads protobufjs.
 *
 * The JSON written is what Go's encoding/json writes for the same object (see the `(go)`
 * option in kubernetes.proto), so `creationTimestamp: null`, `status: {}` and the rest arrive
 * exactly as kubectl ≤ 1.31 sends them. Answers stay JSON: client-go's Accept lists
 * application/json after protobuf.
 *
 * Refusals: a kind crossmesh serves only as JSON (the CRD kinds) → 415 in kube-apiserver's
 * words (CRDs have no protobuf form there either); a body that is not protobuf, is of another
 * kind than the URL, or does not decode → 400 saying what was wrong, and nothing is written.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { CrossmeshError } from '../errors.js';
import { parseResourcePath } from '../api/wire.js';

export const PROTOBUF_MEDIA_TYPE = 'application/vnd.kubernetes.protobuf';

/** The `k8s\0` prefix of every Kubernetes protobuf body. */
const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);
const PACKAGE = 'crossmesh.k8s';
/** Go's zero time.Time (0001-01-01T00:00:00Z) in Unix seconds: JSON null. */
const GO_ZERO_SECONDS = -62135596800;

/** The kinds with a protobuf form here, by `apiVersion kind`. */
const MESSAGES: Readonly<Record<string, string>> = {
  'v1 Namespace': 'Namespace',
  'v1 Service': 'Service',
  'v1 Endpoints': 'Endpoints',
  'v1 Secret': 'Secret',
  'v1 ServiceAccount': 'ServiceAccount',
  'coordination.k8s.io/v1 Lease': 'Lease',
  'authentication.k8s.io/v1 TokenRequest': 'TokenRequest',
};

/** What the URL addresses: the body must be of this kind. */
export interface ExpectedKind {
  apiVersion: string;
  kind: string;
}

type Json = Record<string, unknown>;

let root: protobuf.Root | undefined;

/** kubernetes.proto compiled once (≈10 ms). The .proto stays in src/: dist/src/apiserver → ../../../src/apiserver. */
export function kubernetesTypes(): protobuf.Root {
  if (!root) {
    const file = fileURLToPath(new URL('../../../src/apiserver/kubernetes.proto', import.meta.url));
    root = protobuf.parse(readFileSync(file, 'utf8'), { keepCase: true }).root;
    root.resolveAll();
  }
  return root;
}

function badRequest(message: string, cause?: unknown): CrossmeshError {
  return new CrossmeshError('CM_ERR_BAD_REQUEST', message, cause === undefined ? undefined : { cause });
}

/** kube-apiserver's 415 for a protobuf body to a resource without a protobuf form (a CRD's). */
function unsupported(): CrossmeshError {
  return new CrossmeshError('CM_ERR_UNSUPPORTED_MEDIA', 'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml');
}

/**
 * The body of a create/replace on a resource path (handlers.ts): the resource the URL names
 * decides whether protobuf is accepted at all, then the body must be of that kind.
 */
export function decodeProtobufRequest(body: Buffer, url: string | undefined): Json {
  const p = parseResourcePath(new URL(url ?? '/', 'https://x').pathname);
  if (!p) throw unsupported();
  const expected = { apiVersion: p.group ? `${p.group}/${p.version}` : p.version, kind: p.kind.kind };
  if (!MESSAGES[`${expected.apiVersion} ${expected.kind}`]) throw unsupported();
  return decodeProtobufObject(body, expected);
}

/** One protobuf body of the expected kind, as its JSON object. */
export function decodeProtobufObject(body: Buffer, expected: ExpectedKind): Json {
  const wanted = MESSAGES[`${expected.apiVersion} ${expected.kind}`];
  if (!wanted) throw unsupported();
  const unrecognized = `the object provided is unrecognized (must be of type ${expected.kind})`;
  if (body.length < MAGIC.length || !body.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw badRequest(`${unrecognized}: provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] ("k8s\\0"), got ${body.length} bytes starting ${JSON.stringify(body.subarray(0, 8).toString('latin1'))}; send ${PROTOBUF_MEDIA_TYPE} as client-go encodes it, or application/json`);
  }
  const r = kubernetesTypes();
  const unknownType = r.lookupType(`${PACKAGE}.Unknown`);
  const envelope = decode(unknownType, body.subarray(MAGIC.length), unrecognized, 'the runtime.Unknown envelope');
  const typeMeta = (own(envelope, 'typeMeta') ? envelope.typeMeta : {}) as { apiVersion?: string; kind?: string };
  const apiVersion = typeMeta.apiVersion || expected.apiVersion;
  const kind = typeMeta.kind || expected.kind;
  if (apiVersion !== expected.apiVersion || kind !== expected.kind) {
    throw badRequest(`${unrecognized}: the protobuf body is a ${kind} (${apiVersion}) but the request is for a ${expected.kind} (${expected.apiVersion})`);
  }
  if (envelope.contentEncoding) throw badRequest(`${unrecognized}: the protobuf body has contentEncoding ${JSON.stringify(envelope.contentEncoding)}; only unencoded bodies are read`);
  if (envelope.contentType && envelope.contentType !== PROTOBUF_MEDIA_TYPE) {
    throw badRequest(`${unrecognized}: the protobuf envelope holds ${JSON.stringify(envelope.contentType)}, not ${PROTOBUF_MEDIA_TYPE}`);
  }
  const objectType = r.lookupType(`${PACKAGE}.${wanted}`);
  const raw = (envelope.raw as Uint8Array | undefined) ?? new Uint8Array(0);
  const message = decode(objectType, raw, unrecognized, `the ${kind} message`);
  let json: Json;
  try {
    json = toJson(message, objectType);
  } catch (err) {
    throw badRequest(`${unrecognized}: ${(err as Error).message}`, err);
  }
  return { apiVersion, kind, ...json };
}

function decode(type: protobuf.Type, bytes: Uint8Array, unrecognized: string, what: string): Json {
  try {
    return type.decode(bytes) as unknown as Json;
  } catch (err) {
    throw badRequest(`${unrecognized}: the protobuf body is malformed: ${(err as Error).message} (decoding ${what}, ${bytes.length} bytes)`, err);
  }
}

function own(o: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, key);
}

/** The message as Go's encoding/json writes the Go struct (kubernetes.proto's header says how). */
function toJson(m: Json, type: protobuf.Type, prefix = ''): Json {
  const out: Json = {};
  for (const f of type.fieldsArray) {
    const options = (f.options ?? {}) as Record<string, unknown>;
    const name = typeof options.json_name === 'string' ? options.json_name : f.name;
    const path = `${prefix}${name}`;
    const go = options['(go)'];
    const v = m[f.name];
    if (f.map) {
      const entries = Object.entries((v ?? {}) as Json);
      if (entries.length > 0) out[name] = Object.fromEntries(entries.map(([k, x]) => [k, fieldValue(x, f, `${path}.${k}`)]));
      else if (go === 'keep') out[name] = null;
      continue;
    }
    if (f.repeated) {
      const list = (v ?? []) as unknown[];
      if (list.length > 0) out[name] = list.map((x, i) => fieldValue(x, f, `${path}[${i}]`));
      else if (go === 'keep') out[name] = null;
      continue;
    }
    const present = own(m, f.name);
    if (!present && go === 'null') {
      out[name] = null;
      continue;
    }
    if (f.resolvedType instanceof protobuf.Type) {
      if (present) out[name] = fieldValue(v, f, path);
      continue;
    }
    const x = present ? fieldValue(v, f, path) : zeroOf(f);
    if (go === 'keep' || go === 'null' || (go === 'ptr' && present) || (go === undefined && !isZero(x))) out[name] = x;
  }
  return out;
}

function fieldValue(v: unknown, f: protobuf.Field, path: string): unknown {
  const t = f.resolvedType;
  if (t instanceof protobuf.Type) return special(v as Json, t, path);
  if (f.type === 'bytes') return Buffer.from(v as Uint8Array).toString('base64');
  if (f.type === 'int64' || f.type === 'uint64' || f.type === 'sint64' || f.type === 'fixed64' || f.type === 'sfixed64') return toNumber(v);
  return v;
}

function zeroOf(f: protobuf.Field): unknown {
  if (f.type === 'string') return '';
  if (f.type === 'bool') return false;
  if (f.type === 'bytes') return '';
  return 0;
}

function isZero(x: unknown): boolean {
  return x === '' || x === 0 || x === false;
}

/** int64 arrives as a Long (protobufjs with the long package) or a number. */
function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object' && 'low' in v && 'high' in v) return Number(String(v));
  return Number(v);
}

/** Kubernetes' types whose JSON is not their message: Time, MicroTime, IntOrString, Quantity, FieldsV1. */
function special(v: Json, t: protobuf.Type, path: string): unknown {
  switch (t.name) {
    case 'Time':
    case 'MicroTime': {
      // An empty message is Go's zero time (Kubernetes' Time.Unmarshal), JSON null.
      if (!own(v, 'seconds') && !own(v, 'nanos')) return null;
      const seconds = own(v, 'seconds') ? toNumber(v.seconds) : 0;
      if (seconds === GO_ZERO_SECONDS && !v.nanos) return null;
      const date = new Date(seconds * 1000);
      if (Number.isNaN(date.getTime())) throw new Error(`${path}: ${seconds} seconds is not a time`);
      const whole = date.toISOString().replace(/\.\d{3}Z$/, '');
      if (t.name === 'Time') return `${whole}Z`; // Kubernetes' Time keeps whole seconds only
      const nanos = own(v, 'nanos') ? Number(v.nanos) : 0;
      if (nanos < 0 || nanos > 999_999_999) throw new Error(`${path}: nanos ${nanos} is out of range`);
      return `${whole}.${String(Math.floor(nanos / 1000)).padStart(6, '0')}Z`;
    }
    case 'IntOrString':
      return toNumber(v.type ?? 0) === 1 ? ((v.strVal as string | undefined) ?? '') : ((v.intVal as number | undefined) ?? 0);
    case 'Quantity':
      return (v.string as string | undefined) ?? '';
    case 'FieldsV1': {
      const raw = own(v, 'Raw') ? Buffer.from(v.Raw as Uint8Array).toString('utf8') : '';
      if (raw === '') return {};
      try {
        return JSON.parse(raw);
      } catch (err) {
        throw new Error(`${path}: the managed fields are not JSON (${(err as Error).message})`);
      }
    }
    default:
      return toJson(v, t, `${path}.`);
  }
}
