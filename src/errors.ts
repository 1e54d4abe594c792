/**
 * The one error catalogue, in two tables:
 *
 * - `ERRORS` (errors/cm.ts): crossmesh's `CM_ERR_*` codes, each with its HTTP status and
 *   Kubernetes `Status.reason`; every error crossmesh raises on purpose is a CrossmeshError
 *   with one of them.
 * - `DAPR_ERRORS` (errors/dapr.ts): the Dapr API's `ERR_*` answers, each with its HTTP status,
 *   gRPC status and message template, built with `daprError()`.
 *
 * Import from here. docs/ERRORS.md documents both tables; src/errors.test.ts keeps it in sync.
 */
export * from './errors/cm.js';
export * from './errors/dapr.js';
