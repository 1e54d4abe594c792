/**
 * Each kind's zod schema as a Kubernetes structural JSON schema (OpenAPI v3 flavour): what the
 * API server publishes under /openapi/v2 and /openapi/v3 and what the CRDs in deploy/crds/
 * carry. The zod schemas stay the one source: the conversion is zod-to-json-schema's, and this
 * module only maps its output onto Kubernetes' rules (apiextensions' structural schemas):
 *
 * - every node typed; a passthrough object (unknown fields kept) is `x-kubernetes-preserve-unknown-fields: true`
 *   with its properties, never `additionalProperties` beside `properties`;
 * - `z.unknown()` (and Dapr's DynamicValue, a preprocess that takes any YAML value) is an untyped
 *   node with `x-kubernetes-preserve-unknown-fields`;
 * - int-or-string unions (Service targetPort) are `x-kubernetes-int-or-string` with the one
 *   anyOf structural schemas allow;
 * - the envelope: `status` is an object whose fields are kept, `apiVersion`/`kind`/`metadata`
 *   are not required (the server fills them in);
 * - the list-merge extensions Kubernetes publishes for the core kinds' lists (`LIST_EXTENSIONS`).
 *
 * Refinements and cross-field checks have no JSON-schema form and are not published (the
 * server runs them); defaults are (`.default()` in zod).
 *
 * Loads zod and zod-to-json-schema: only the API server (on the first OpenAPI request) and
 * `crossmesh crds` import it, never the sidecar.
 */
import type { z } from 'zod';
import { zodToJsonSchema, ignoreOverride } from 'zod-to-json-schema';
import type { KindInfo } from './kinds.js';
import { metadataSchema } from './meta.js';
import { schemaFor } from './schemas.js';

export type JsonSchema = { [key: string]: unknown };

const PRESERVE = 'x-kubernetes-preserve-unknown-fields';
const INT_OR_STRING = 'x-kubernetes-int-or-string';

/**
 * The list-merge extensions of the core kinds' lists, as Kubernetes publishes them (strategic
 * merge patch keys and server-side apply list types), by kind and dotted field path.
 */
export const LIST_EXTENSIONS: Readonly<Record<string, Readonly<Record<string, JsonSchema>>>> = {
  Service: {
    'spec.ports': {
      'x-kubernetes-list-map-keys': ['port', 'protocol'],
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-patch-merge-key': 'port',
      'x-kubernetes-patch-strategy': 'merge',
    },
  },
  Endpoints: {
    subsets: { 'x-kubernetes-list-type': 'atomic' },
    'subsets.addresses': { 'x-kubernetes-list-type': 'atomic' },
    'subsets.notReadyAddresses': { 'x-kubernetes-list-type': 'atomic' },
    'subsets.ports': { 'x-kubernetes-list-type': 'atomic' },
  },
  ServiceAccount: {
    secrets: { 'x-kubernetes-patch-merge-key': 'name', 'x-kubernetes-patch-strategy': 'merge' },
  },
};

/** zod-to-json-schema for one zod schema, inline (no $ref), input side of effects. */
function convert(schema: z.ZodTypeAny): JsonSchema {
  const out = zodToJsonSchema(schema, {
    target: 'openApi3',
    $refStrategy: 'none',
    effectStrategy: 'input',
    override: (def) => {
      const d = def as { typeName?: string; effect?: { type?: string } };
      // A preprocess accepts any value and coerces it (Dapr's DynamicValue): untyped, kept as is.
      if (d.typeName === 'ZodEffects' && d.effect?.type === 'preprocess') return { [PRESERVE]: true } as never;
      return ignoreOverride;
    },
  }) as JsonSchema;
  delete out.$schema;
  delete out.definitions;
  return out;
}

function isIntOrString(s: JsonSchema): boolean {
  const any = s.anyOf;
  if (!Array.isArray(any) || any.length !== 2) return false;
  const types = any.map((x) => (x as JsonSchema).type).sort();
  return types[0] === 'integer' && types[1] === 'string';
}

/** Kubernetes' structural form of one converted node (recursively). */
function structural(s: JsonSchema): JsonSchema {
  if (isIntOrString(s)) {
    const { anyOf: _drop, ...rest } = s;
    return { ...rest, anyOf: [{ type: 'integer' }, { type: 'string' }], [INT_OR_STRING]: true };
  }
  const out: JsonSchema = { ...s };
  if (out.type === undefined && out.anyOf === undefined && out.allOf === undefined && out.$ref === undefined && !out[PRESERVE]) {
    // z.unknown() / z.any(): any value.
    out[PRESERVE] = true;
  }
  if (out.type === 'object') {
    const props = out.properties as Record<string, JsonSchema> | undefined;
    if (props) {
      out.properties = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, structural(v)]));
      // passthrough: the object's unknown fields are kept.
      if (out.additionalProperties === true || (typeof out.additionalProperties === 'object' && out.additionalProperties !== null)) out[PRESERVE] = true;
      delete out.additionalProperties;
      if (out[PRESERVE] && Object.keys(out.properties as object).length === 0) delete out.properties;
      if (Array.isArray(out.required) && out.required.length === 0) delete out.required;
    } else if (typeof out.additionalProperties === 'object' && out.additionalProperties !== null) {
      out.additionalProperties = structural(out.additionalProperties as JsonSchema);
    } else if (out.additionalProperties === true) {
      delete out.additionalProperties;
      out[PRESERVE] = true;
    } else {
      // z.object({}).strict() or an empty object: no fields to describe.
      delete out.additionalProperties;
    }
  }
  if (out.type === 'array' && out.items && typeof out.items === 'object') out.items = structural(out.items as JsonSchema);
  return out;
}

function addListExtensions(root: JsonSchema, kind: string): void {
  for (const [path, ext] of Object.entries(LIST_EXTENSIONS[kind] ?? {})) {
    let node: JsonSchema | undefined = root;
    for (const part of path.split('.')) {
      if (node?.type === 'array') node = node.items as JsonSchema;
      node = (node?.properties as Record<string, JsonSchema> | undefined)?.[part];
    }
    if (!node || node.type !== 'array') throw new Error(`api/jsonschema.ts: ${kind}.${path} is not a list of the schema`);
    Object.assign(node, ext);
  }
}

/**
 * The structural schema of a kind's objects. `metadata` is the converted ObjectMeta unless
 * `metadata` is given (a `$ref` for OpenAPI, `{type: object}` for a CRD, which may not
 * describe metadata).
 */
export function kindJsonSchema(info: KindInfo, opts: { metadata?: JsonSchema } = {}): JsonSchema {
  const root = structural(convert(schemaFor(info)));
  const props = root.properties as Record<string, JsonSchema>;
  props.apiVersion = {
    type: 'string',
    description: 'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.',
  };
  props.kind = {
    type: 'string',
    description: 'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. In CamelCase.',
  };
  props.metadata = opts.metadata ?? objectMetaJsonSchema();
  // status: written by controllers; an object whose fields are kept.
  props.status = { type: 'object', [PRESERVE]: true };
  if (Array.isArray(root.required)) {
    root.required = (root.required as string[]).filter((f) => f !== 'apiVersion' && f !== 'kind' && f !== 'metadata');
    if ((root.required as string[]).length === 0) delete root.required;
  }
  addListExtensions(root, info.kind);
  return root;
}

/** ObjectMeta as crossmesh validates it (names, labels, annotations, the system fields). */
export function objectMetaJsonSchema(): JsonSchema {
  return structural(convert(metadataSchema('subdomain')));
}
