/**
 * The resource model with validation: everything of index.ts plus the zod schemas
 * (`validateObject`, `schemaFor`) and multi-document YAML manifests (`parseManifests`). Costs
 * zod, yaml and safe-regex2 at load (~15 MB, ~50 ms): the API server, the controllers and the
 * CLI's write commands import it; the sidecar does not.
 */
export * from './index.js';
export { validateObject, formatPath } from './validate.js';
export { parseManifests, type ParsedDocument, type ManifestProblem } from './manifest.js';
export { schemaFor, checkFor } from './schemas.js';
