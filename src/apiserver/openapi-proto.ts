/**
 * An OpenAPI v2 (Swagger) JSON document in the protobuf form client-go asks for: `GET /openapi/v2`
 * with `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf` is decoded with
 * `proto.Unmarshal` into gnostic's `openapi_v2.Document` (client-go has no JSON fallback for v2),
 * so kubectl's `apply` (its fieldValidation check and strategic-merge patch metadata) needs this.
 *
 * The protobuf wire format written by hand for the messages of gnostic's OpenAPIv2.proto that the
 * API server's document uses (Document, Info, Paths, PathItem, Operation, parameters, responses,
 * Definitions, Schema, vendor extensions); field numbers are gnostic's. Vendor extensions and
 * `default`/`enum` values are `Any{yaml}` with JSON text (JSON is YAML), as gnostic's compiler
 * keeps them.
 */

type Json = Record<string, any>;

function varint(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

const key = (field: number, wire: number) => varint(field * 8 + wire);

function bytesField(field: number, data: Buffer): Buffer {
  return Buffer.concat([key(field, 2), varint(data.length), data]);
}

function str(field: number, s: unknown): Buffer[] {
  return typeof s === 'string' && s !== '' ? [bytesField(field, Buffer.from(s, 'utf8'))] : [];
}

function strs(field: number, list: unknown): Buffer[] {
  return Array.isArray(list) ? list.flatMap((s) => str(field, s)) : [];
}

function bool(field: number, b: unknown): Buffer[] {
  return b === true ? [Buffer.concat([key(field, 0), varint(1)])] : [];
}

function double(field: number, d: unknown): Buffer[] {
  if (typeof d !== 'number') return [];
  const b = Buffer.alloc(8);
  b.writeDoubleLE(d);
  return [Buffer.concat([key(field, 1), b])];
}

function int(field: number, n: unknown): Buffer[] {
  return typeof n === 'number' && n > 0 ? [Buffer.concat([key(field, 0), varint(n)])] : [];
}

function msg(field: number, parts: Buffer[]): Buffer {
  return bytesField(field, Buffer.concat(parts));
}

/** `Any{yaml}`: a value as JSON text. */
function any(field: number, v: unknown): Buffer[] {
  return v === undefined ? [] : [msg(field, str(2, JSON.stringify(v)))];
}

/** `repeated NamedAny vendor_extension`: the `x-` keys of an object. */
function extensions(field: number, o: Json): Buffer[] {
  return Object.entries(o)
    .filter(([k]) => k.startsWith('x-'))
    .map(([k, v]) => msg(field, [...str(1, k), ...any(2, v)]));
}

function schema(s: Json): Buffer[] {
  const parts: Buffer[] = [
    ...str(1, s.$ref),
    ...str(2, s.format),
    ...str(3, s.title),
    ...str(4, s.description),
    ...any(5, s.default),
    ...double(6, s.multipleOf),
    ...double(7, s.maximum),
    ...bool(8, s.exclusiveMaximum),
    ...double(9, s.minimum),
    ...bool(10, s.exclusiveMinimum),
    ...int(11, s.maxLength),
    ...int(12, s.minLength),
    ...str(13, s.pattern),
    ...int(14, s.maxItems),
    ...int(15, s.minItems),
    ...bool(16, s.uniqueItems),
    ...int(17, s.maxProperties),
    ...int(18, s.minProperties),
    ...strs(19, s.required),
    ...(Array.isArray(s.enum) ? s.enum.flatMap((v: unknown) => any(20, v)) : []),
  ];
  if (s.additionalProperties !== undefined) {
    const ap = s.additionalProperties;
    // A oneof: false is written too, so the branch is set.
    parts.push(msg(21, typeof ap === 'boolean' ? [Buffer.concat([key(2, 0), varint(ap ? 1 : 0)])] : [msg(1, schema(ap))]));
  }
  if (s.type !== undefined) parts.push(msg(22, strs(1, Array.isArray(s.type) ? s.type : [s.type])));
  if (s.items !== undefined) parts.push(msg(23, (Array.isArray(s.items) ? s.items : [s.items]).map((i: Json) => msg(1, schema(i)))));
  if (Array.isArray(s.allOf)) for (const a of s.allOf) parts.push(msg(24, schema(a)));
  if (s.properties !== undefined) {
    parts.push(msg(25, Object.entries(s.properties as Record<string, Json>).map(([name, p]) => msg(1, [...str(1, name), msg(2, schema(p))]))));
  }
  parts.push(...bool(27, s.readOnly), ...extensions(31, s));
  return parts;
}

function parameter(p: Json): Buffer {
  // ParametersItem{parameter: Parameter{body_parameter | non_body_parameter}}.
  if (p.in === 'body') {
    const body = [...str(1, p.description), ...str(2, p.name), ...str(3, p.in), ...bool(4, p.required), ...(p.schema ? [msg(5, schema(p.schema))] : [])];
    return msg(8, [msg(1, [msg(1, body)])]);
  }
  const sub = p.in === 'path'
    ? msg(4, [...bool(1, p.required), ...str(2, p.in), ...str(3, p.description), ...str(4, p.name), ...str(5, p.type)])
    : msg(3, [...bool(1, p.required), ...str(2, p.in), ...str(3, p.description), ...str(4, p.name), ...bool(5, p.allowEmptyValue), ...str(6, p.type)]);
  return msg(8, [msg(1, [msg(2, [sub])])]);
}

function operation(op: Json): Buffer[] {
  const responses = Object.entries((op.responses ?? {}) as Record<string, Json>).map(([code, r]) =>
    msg(1, [...str(1, code), msg(2, [msg(1, [...str(1, r.description), ...(r.schema ? [msg(2, [msg(1, schema(r.schema))])] : [])])])]));
  return [
    ...strs(1, op.tags),
    ...str(3, op.description),
    ...str(5, op.operationId),
    ...strs(6, op.produces),
    ...strs(7, op.consumes),
    // PathItem's and Operation's parameters share the ParametersItem layout: field 8 here.
    ...(Array.isArray(op.parameters) ? op.parameters.map(parameter) : []),
    msg(9, responses),
    ...strs(10, op.schemes),
    ...extensions(13, op),
  ];
}

const METHODS: [string, number][] = [['get', 2], ['put', 3], ['post', 4], ['delete', 5], ['options', 6], ['head', 7], ['patch', 8]];

function pathItem(item: Json): Buffer[] {
  const parts: Buffer[] = [];
  for (const [m, field] of METHODS) if (item[m]) parts.push(msg(field, operation(item[m])));
  if (Array.isArray(item.parameters)) {
    // PathItem.parameters is field 9 (a ParametersItem each); parameter() writes field 8, so re-key it.
    for (const p of item.parameters) parts.push(rekey(parameter(p), 9));
  }
  return parts;
}

/** A length-delimited field written as field 8, moved to another field number. */
function rekey(field8: Buffer, to: number): Buffer {
  // key(8, 2) is one byte (0x42).
  return Buffer.concat([key(to, 2), field8.subarray(1)]);
}

/** The protobuf bytes of a Swagger 2.0 JSON document. */
export function encodeOpenApiV2(doc: Json): Buffer {
  const paths = Object.entries((doc.paths ?? {}) as Record<string, Json>).map(([p, item]) => msg(2, [...str(1, p), msg(2, pathItem(item))]));
  const defs = Object.entries((doc.definitions ?? {}) as Record<string, Json>).map(([name, s]) => msg(1, [...str(1, name), msg(2, schema(s))]));
  return Buffer.concat([
    ...str(1, doc.swagger),
    msg(2, [...str(1, doc.info?.title), ...str(2, doc.info?.version)]),
    ...strs(6, doc.consumes),
    ...strs(7, doc.produces),
    msg(8, paths),
    msg(9, defs),
    ...extensions(16, doc),
  ]);
}
