/**
 * The Dapr-compatible side of the sidecar: the Dapr HTTP API (server.ts), state API
 * (state-api.ts), secrets API (secrets-api.ts), lock API (lock-api.ts), components (components.ts), resiliency policies (resiliency.ts) and service
 * invocation (invoke.ts); the Dapr gRPC API is grpc/ (imported by the sidecar on the first gRPC connection).
 */
export { createDaprApiHandler, startDaprApiServer, DEFAULT_MAX_BODY_BYTES, type DaprApiOptions, type DaprComponents, type RunningDaprApi } from './server.js';
export { ComponentRegistry, keyPrefixFor, KEY_SEPARATOR, type ComponentRegistryOptions, type LoadedStateStore, type LoadedSecretStore, type LoadedLockStore } from './components.js';
export { compileResiliency, CircuitBreaker, parseTrip, defaultIsPermanent, type Policy, type CompiledResiliency, type RunOptions, type RetrySettings } from './resiliency.js';
export type { InvokeHandler, ComponentStatus, MetricsSource } from './types.js';
