/**
 * The API's OpenAPI documents, generated from the kinds' zod schemas (api/jsonschema.ts):
 *
 * - `GET /openapi/v2`: one Swagger 2.0 document, JSON, or protobuf (gnostic's `openapi_v2.Document`)
 *   when the Accept header asks for `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`,
 *   as client-go's discovery does (kubectl 1.27/1.28 `apply` reads it for the fieldValidation
 *   check and the strategic-merge-patch metadata);
 * - `GET /openapi/v3`: the discovery document `{paths: {"apis/<group>/<version>": {serverRelativeURL:
 *   "/openapi/v3/apis/<group>/<version>?hash=<hash>"}, "api/v1": ...}}`;
 * - `GET /openapi/v3/apis/<group>/<version>` and `/openapi/v3/api/v1`: one OpenAPI 3.0 document per
 *   group version (what `kubectl explain` and kubectl ≥ 1.30's apply read), JSON. With the current
 *   `?hash=` it is cacheable for good (`Cache-Control: public, immutable`), as Kubernetes serves it.
 *
 * Definitions are named as Kubernetes names them (`io.k8s.api.core.v1.Service`,
 * `io.k8s.api.coordination.v1.Lease`, `io.flomesh.v1alpha1.ServiceExport`, `io.dapr.v1alpha1.Component`),
 * each with `x-kubernetes-group-version-kind`; every PATCH operation carries its GVK and the
 * `fieldValidation` parameter (so kubectl validates on the server, with `fieldValidation=Strict`,
 * instead of client-side). Built once, on the first request (this module, zod-to-json-schema and
 * the schemas are loaded only then).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { KINDS, type KindInfo } from '../api/index.js';
import { kindJsonSchema, objectMetaJsonSchema, type JsonSchema } from '../api/jsonschema.js';
import { CrossmeshError } from '../errors.js';
import { VERSION } from '../version.js';
import { encodeOpenApiV2 } from './openapi-proto.js';

/** What client-go asks for. */
export const OPENAPI_V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf';
/** What is answered: the same type without the '@' Go's mime parser refuses ("unexpected content after media subtype"), as Kubernetes answers. */
export const OPENAPI_V2_PROTOBUF_SERVED = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';

const OBJECT_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';
const LIST_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta';
const PATCH = 'io.k8s.apimachinery.pkg.apis.meta.v1.Patch';
const INFO = { title: 'Kubernetes', version: `v1.28.0-crossmesh.${VERSION}` };

/** Kubernetes' definition name of a kind: reversed group, version, kind. */
export function definitionName(group: string, version: string, kind: string): string {
  if (group === '') return `io.k8s.api.core.${version}.${kind}`;
  if (group.endsWith('.k8s.io')) return `io.k8s.api.${group.slice(0, -'.k8s.io'.length)}.${version}.${kind}`;
  return `${group.split('.').reverse().join('.')}.${version}.${kind}`;
}

export interface GroupVersion {
  group: string;
  version: string;
  kinds: KindInfo[];
}

/** Every group version served, alias groups included (`multicluster.flomesh.io`). */
export function groupVersions(): GroupVersion[] {
  const out = new Map<string, GroupVersion>();
  for (const k of KINDS) {
    for (const group of [k.group, ...k.groupAliases]) {
      const id = `${group}/${k.version}`;
      const gv = out.get(id) ?? { group, version: k.version, kinds: [] };
      gv.kinds.push(k);
      out.set(id, gv);
    }
  }
  return [...out.values()];
}

/** `api/v1`, `apis/flomesh.io/v1alpha1`: the key of a group version in /openapi/v3. */
export function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

type Flavour = 'v2' | 'v3';

const ref = (f: Flavour, name: string) => ({ $ref: f === 'v2' ? `#/definitions/${name}` : `#/components/schemas/${name}` });

const INT_OR_STRING = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString';

/**
 * Core kinds' int-or-string fields (Service targetPort) point at Kubernetes' named
 * `IntOrString` definition (`type: string, format: int-or-string`), as the Kubernetes API server
 * publishes them: `kubectl explain` prints the definition's name (`<IntOrString>`), and v2 has
 * no anyOf to say it otherwise. (CRDs keep `x-kubernetes-int-or-string`: apiextensions' form.)
 */
function withIntOrStringRef(s: JsonSchema, f: Flavour): JsonSchema {
  if (s['x-kubernetes-int-or-string']) {
    const { anyOf: _a, 'x-kubernetes-int-or-string': _i, type: _t, ...rest } = s;
    // v3 siblings of $ref are ignored, so the description travels beside it in allOf, as Kubernetes writes it.
    return f === 'v2' ? { ...ref(f, INT_OR_STRING), ...rest } : { ...rest, allOf: [ref(f, INT_OR_STRING)] };
  }
  const out: JsonSchema = { ...s };
  if (out.properties) out.properties = Object.fromEntries(Object.entries(out.properties as Record<string, JsonSchema>).map(([k, v]) => [k, withIntOrStringRef(v, f)]));
  if (out.items) out.items = withIntOrStringRef(out.items as JsonSchema, f);
  if (out.additionalProperties && typeof out.additionalProperties === 'object') out.additionalProperties = withIntOrStringRef(out.additionalProperties as JsonSchema, f);
  return out;
}

function schemasOf(gv: GroupVersion, f: Flavour): Record<string, JsonSchema> {
  const defs: Record<string, JsonSchema> = {};
  const conv = (s: JsonSchema) => withIntOrStringRef(s, f);
  defs[INT_OR_STRING] = {
    type: 'string',
    format: 'int-or-string',
    description: 'IntOrString is a type that can hold an int32 or a string.',
  };
  defs[OBJECT_META] = conv({
    ...objectMetaJsonSchema(),
    description: 'ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.',
  });
  defs[LIST_META] = {
    type: 'object',
    description: 'ListMeta describes metadata that synthetic resources must have, including lists and various status objects.',
    properties: { resourceVersion: { type: 'string' }, continue: { type: 'string' }, remainingItemCount: { type: 'integer', format: 'int64' } },
  };
  defs[PATCH] = { type: 'object', description: 'Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.' };
  for (const k of gv.kinds) {
    const name = definitionName(gv.group, gv.version, k.kind);
    defs[name] = {
      ...conv(kindJsonSchema(k, { metadata: ref(f, OBJECT_META) })),
      description: `${k.kind} (${gv.group ? `${gv.group}/` : ''}${gv.version}), served by crossmesh.`,
      'x-kubernetes-group-version-kind': [{ group: gv.group, kind: k.kind, version: gv.version }],
    };
    defs[`${name}List`] = {
      type: 'object',
      description: `${k.kind}List is a list of ${k.kind}.`,
      required: ['items'],
      properties: {
        apiVersion: { type: 'string' },
        items: { type: 'array', items: ref(f, name) },
        kind: { type: 'string' },
        metadata: ref(f, LIST_META),
      },
      'x-kubernetes-group-version-kind': [{ group: gv.group, kind: `${k.kind}List`, version: gv.version }],
    };
  }
  return defs;
}

interface Param { name: string; in: 'path' | 'query' | 'body'; type?: string; description: string; required?: boolean; uniqueItems?: boolean; schema?: JsonSchema }

const Q = (name: string, description: string, type = 'string'): Param => ({ name, in: 'query', type, description, uniqueItems: true });
const DRY_RUN = Q('dryRun', 'When present, indicates that modifications should not be persisted. Valid values: All.');
const FIELD_MANAGER = Q('fieldManager', 'fieldManager is a name associated with the actor or entity that is making these changes.');
const FIELD_VALIDATION = Q('fieldValidation', 'How the server handles fields of the request body it does not know: Ignore, Warn or Strict.');
const FORCE = Q('force', 'Force is going to "force" Apply requests (server-side apply only).', 'boolean');
const PRETTY = Q('pretty', "If 'true', then the output is pretty printed.");
const LIST_PARAMS = [
  Q('allowWatchBookmarks', 'allowWatchBookmarks requests watch events with type "BOOKMARK".', 'boolean'),
  Q('continue', 'The continue option should be set when retrieving more results from the server.'),
  Q('fieldSelector', 'A selector to restrict the list of returned objects by their fields (metadata.name, metadata.namespace).'),
  Q('labelSelector', 'A selector to restrict the list of returned objects by their labels.'),
  Q('limit', 'limit is a maximum number of responses to return for a list call.', 'integer'),
  Q('resourceVersion', 'resourceVersion sets a constraint on what resource versions a request may be served from.'),
  Q('resourceVersionMatch', 'resourceVersionMatch determines how resourceVersion is applied to list calls.'),
  Q('timeoutSeconds', 'Timeout for the list/watch call.', 'integer'),
  Q('watch', 'Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.', 'boolean'),
];

function smpOf(group: string): boolean {
  return group === '' || group.endsWith('.k8s.io');
}

interface Op { action: string; id: string; description: string; params: Param[]; body?: string; response: string; consumes?: string[] }

/** The REST paths of one group version: path → method → operation (flavour-neutral). */
function pathsOf(gv: GroupVersion): Map<string, { params: Param[]; ops: Record<string, Op> }> {
  const paths = new Map<string, { params: Param[]; ops: Record<string, Op> }>();
  const prefix = gv.group ? `/apis/${gv.group}/${gv.version}` : `/api/${gv.version}`;
  const idPart = `${gv.group.split('.').map((p) => p.charAt(0).toUpperCase() + p.slice(1)).join('')}${gv.version.charAt(0).toUpperCase()}${gv.version.slice(1)}`;
  const nsParam: Param = { name: 'namespace', in: 'path', type: 'string', required: true, description: 'object name and auth scope, such as for teams and projects' };
  const nameParam = (kind: string): Param => ({ name: 'name', in: 'path', type: 'string', required: true, description: `name of the ${kind}` });
  const patchTypes = (group: string) => [
    'application/json-patch+json',
    'application/merge-patch+json',
    ...(smpOf(group) ? ['application/strategic-merge-patch+json'] : []),
    'application/apply-patch+yaml',
  ];
  for (const k of gv.kinds) {
    const def = definitionName(gv.group, gv.version, k.kind);
    const scoped = k.namespaced ? 'Namespaced' : '';
    const collection = k.namespaced ? `${prefix}/namespaces/{namespace}/${k.plural}` : `${prefix}/${k.plural}`;
    const base = k.namespaced ? [nsParam] : [];
    paths.set(collection, {
      params: [...base, PRETTY],
      ops: {
        get: { action: 'list', id: `list${idPart}${scoped}${k.kind}`, description: `list or watch objects of kind ${k.kind}`, params: LIST_PARAMS, response: `${def}List` },
        post: { action: 'post', id: `create${idPart}${scoped}${k.kind}`, description: `create a ${k.kind}`, params: [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION], body: def, response: def },
      },
    });
    const itemOps = (sub: string, withDelete: boolean): Record<string, Op> => ({
      get: { action: 'get', id: `read${idPart}${scoped}${k.kind}${sub}`, description: `read the specified ${k.kind}`, params: [], response: def },
      put: { action: 'put', id: `replace${idPart}${scoped}${k.kind}${sub}`, description: `replace the specified ${k.kind}`, params: [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION], body: def, response: def },
      patch: {
        action: 'patch', id: `patch${idPart}${scoped}${k.kind}${sub}`, description: `partially update the specified ${k.kind}`,
        params: [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE], body: PATCH, response: def, consumes: patchTypes(gv.group),
      },
      ...(withDelete ? { delete: { action: 'delete', id: `delete${idPart}${scoped}${k.kind}`, description: `delete a ${k.kind}`, params: [DRY_RUN, Q('propagationPolicy', 'Whether and how garbage collection will be performed.')], response: def } } : {}),
    });
    paths.set(`${collection}/{name}`, { params: [nameParam(k.kind), ...base, PRETTY], ops: itemOps('', true) });
    if (k.hasStatus) paths.set(`${collection}/{name}/status`, { params: [nameParam(k.kind), ...base, PRETTY], ops: itemOps('Status', false) });
    if (k.namespaced) {
      paths.set(`${prefix}/${k.plural}`, {
        params: [PRETTY],
        ops: { get: { action: 'list', id: `list${idPart}${k.kind}ForAllNamespaces`, description: `list or watch objects of kind ${k.kind}`, params: LIST_PARAMS, response: `${def}List` } },
      });
    }
  }
  return paths;
}

/** An operation's GVK is its resource's kind (lists included), as Kubernetes publishes it. */
function gvkOf(gv: GroupVersion, response: string): { group: string; version: string; kind: string } {
  return { group: gv.group, version: gv.version, kind: response.slice(response.lastIndexOf('.') + 1).replace(/List$/, '') };
}

function v2Param(p: Param): JsonSchema {
  const { schema: _s, type, ...rest } = p;
  return { ...rest, ...(type ? { type } : {}) };
}

function v2Paths(gv: GroupVersion): Record<string, JsonSchema> {
  const out: Record<string, JsonSchema> = {};
  for (const [path, { params, ops }] of pathsOf(gv)) {
    const item: JsonSchema = { parameters: params.map(v2Param) };
    for (const [method, op] of Object.entries(ops)) {
      item[method] = {
        description: op.description,
        operationId: op.id,
        consumes: op.consumes ?? ['*/*'],
        produces: ['application/json'],
        schemes: ['https'],
        tags: [gv.group ? `${gv.group.split('.')[0]}_${gv.version}` : `core_${gv.version}`],
        parameters: [...(op.body ? [{ name: 'body', in: 'body', required: true, schema: ref('v2', op.body) }] : []), ...op.params.map(v2Param)],
        responses: { '200': { description: 'OK', schema: ref('v2', op.response) }, '401': { description: 'Unauthorized' } },
        'x-kubernetes-action': op.action,
        'x-kubernetes-group-version-kind': gvkOf(gv, op.response),
      };
    }
    out[path] = item;
  }
  return out;
}

function v3Param(p: Param): JsonSchema {
  return { name: p.name, in: p.in, description: p.description, ...(p.required ? { required: true } : {}), schema: { type: p.type ?? 'string', ...(p.uniqueItems ? { uniqueItems: true } : {}) } };
}

function v3Paths(gv: GroupVersion): Record<string, JsonSchema> {
  const out: Record<string, JsonSchema> = {};
  for (const [path, { params, ops }] of pathsOf(gv)) {
    const item: JsonSchema = { parameters: params.map(v3Param) };
    for (const [method, op] of Object.entries(ops)) {
      const bodyTypes = op.consumes ?? ['*/*'];
      item[method] = {
        description: op.description,
        operationId: op.id,
        tags: [gv.group ? `${gv.group.split('.')[0]}_${gv.version}` : `core_${gv.version}`],
        parameters: op.params.map(v3Param),
        ...(op.body ? { requestBody: { required: true, content: Object.fromEntries(bodyTypes.map((t) => [t, { schema: ref('v3', op.body!) }])) } } : {}),
        responses: {
          '200': { description: 'OK', content: { 'application/json': { schema: ref('v3', op.response) } } },
          '401': { description: 'Unauthorized' },
        },
        'x-kubernetes-action': op.action,
        'x-kubernetes-group-version-kind': gvkOf(gv, op.response),
      };
    }
    out[path] = item;
  }
  return out;
}

/** The Swagger 2.0 document of every group version. */
export function buildOpenApiV2(): JsonSchema {
  const paths: Record<string, JsonSchema> = {};
  const definitions: Record<string, JsonSchema> = {};
  for (const gv of groupVersions()) {
    Object.assign(paths, v2Paths(gv));
    Object.assign(definitions, schemasOf(gv, 'v2'));
  }
  return { swagger: '2.0', info: INFO, paths, definitions };
}

/** The OpenAPI 3.0 document of one group version. */
export function buildOpenApiV3(gv: GroupVersion): JsonSchema {
  return { openapi: '3.0.0', info: INFO, paths: v3Paths(gv), components: { schemas: schemasOf(gv, 'v3') } };
}

interface Built {
  v2Json: Buffer;
  v2Proto: Buffer;
  v3Index: Buffer;
  v3: Map<string, { body: Buffer; hash: string }>;
}

let built: Built | undefined;

function build(): Built {
  const v2 = buildOpenApiV2();
  const v3 = new Map<string, { body: Buffer; hash: string }>();
  const index: Record<string, { serverRelativeURL: string }> = {};
  for (const gv of groupVersions()) {
    const body = Buffer.from(JSON.stringify(buildOpenApiV3(gv)));
    const hash = createHash('sha512').update(body).digest('hex').slice(0, 128).toUpperCase();
    const p = gvPath(gv.group, gv.version);
    v3.set(p, { body, hash });
    index[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${hash}` };
  }
  return { v2Json: Buffer.from(JSON.stringify(v2)), v2Proto: encodeOpenApiV2(v2), v3Index: Buffer.from(JSON.stringify({ paths: index })), v3 };
}

/** The documents (built on first use). */
export function openApiDocuments(): Built {
  return (built ??= build());
}

function send(res: ServerResponse, contentType: string, body: Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': contentType, 'content-length': body.length, ...headers });
  res.end(body);
}

/** True for the paths this module answers. */
export function isOpenApiPath(path: string): boolean {
  return path === '/openapi/v2' || path === '/openapi/v3' || path.startsWith('/openapi/v3/');
}

/** Answers GET /openapi/v2, /openapi/v3 and /openapi/v3/<group version>. */
export function handleOpenApi(req: IncomingMessage, res: ServerResponse, path: string, url: URL): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new CrossmeshError('CM_ERR_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`);
  const docs = openApiDocuments();
  if (path === '/openapi/v2') {
    const accept = String(req.headers.accept ?? '');
    if (accept.includes('protobuf')) return send(res, OPENAPI_V2_PROTOBUF_SERVED, docs.v2Proto);
    return send(res, 'application/json', docs.v2Json);
  }
  if (path === '/openapi/v3' || path === '/openapi/v3/') return send(res, 'application/json', docs.v3Index, { 'cache-control': 'no-cache, private' });
  const doc = docs.v3.get(path.slice('/openapi/v3/'.length).replace(/\/$/, ''));
  if (!doc) throw new CrossmeshError('CM_ERR_NOT_FOUND', `the server could not find the requested resource (${path}): the OpenAPI v3 documents are listed at /openapi/v3`);
  const current = url.searchParams.get('hash') === doc.hash;
  send(res, 'application/json', doc.body, {
    etag: `"${doc.hash}"`,
    'cache-control': current ? 'public, immutable, max-age=31536000' : 'no-cache, private',
  });
}
