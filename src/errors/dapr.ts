/**
 * The Dapr API's error codes (`ERR_*`), as daprd answers them (pkg/messages/predefined.go and
 * the HTTP/gRPC handlers): one entry per answer, with the `errorCode` on the wire, the HTTP
 * status, the gRPC status code (for the gRPC API) and the message template.
 *
 * An entry's key is its errorCode, or `errorCode:variant` when daprd answers the same code with
 * another status or message (e.g. `ERR_STATE_SAVE:etag-mismatch` → 409). Templates name their
 * arguments in braces (`{store}`); `daprError()` checks both the key and the arguments at
 * compile time. docs/ERRORS.md lists every entry (a test keeps the two in sync).
 */

/** gRPC status codes (google.golang.org/grpc/codes). */
export const GRPC_CODES = {
  OK: 0,
  Cancelled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;

export type GrpcCodeName = keyof typeof GRPC_CODES;

interface DaprErrorSpec {
  /** HTTP status of the answer. */
  readonly status: number;
  /** gRPC status code of the same failure. */
  readonly grpc: GrpcCodeName;
  /** Message template; `{name}` is replaced by the argument of that name. */
  readonly message: string;
}

export const DAPR_ERRORS = {
  // ---- generic / HTTP
  ERR_BODY_READ: { status: 413, grpc: 'ResourceExhausted', message: 'failed to read request body: {error}' },
  ERR_MALFORMED_REQUEST: { status: 400, grpc: 'InvalidArgument', message: 'failed deserializing HTTP body: {detail}' },
  'ERR_MALFORMED_REQUEST:key': { status: 400, grpc: 'InvalidArgument', message: "input key/keyPrefix '{key}' can't contain '||'" },
  'ERR_MALFORMED_REQUEST:option': { status: 400, grpc: 'InvalidArgument', message: '{detail}' },
  ERR_INTERNAL: { status: 500, grpc: 'Internal', message: '{error}' },

  // ---- health
  ERR_HEALTH_NOT_READY: { status: 500, grpc: 'Internal', message: 'dapr is not ready' },
  ERR_OUTBOUND_HEALTH_NOT_READY: { status: 500, grpc: 'Internal', message: 'dapr outbound is not ready' },

  // ---- service invocation
  ERR_DIRECT_INVOKE: { status: 500, grpc: 'Internal', message: 'failed to invoke, id: {appId}, err: {error}' },
  'ERR_DIRECT_INVOKE:no-app-id': { status: 404, grpc: 'NotFound', message: 'failed getting app id either from the URL path or the header dapr-app-id' },
  'ERR_DIRECT_INVOKE:not-configured': { status: 501, grpc: 'Unimplemented', message: 'service invocation is not configured' },

  // ---- state
  ERR_STATE_STORE_NOT_CONFIGURED: { status: 500, grpc: 'FailedPrecondition', message: 'state store is not configured' },
  ERR_STATE_STORE_NOT_FOUND: { status: 400, grpc: 'InvalidArgument', message: 'state store {store} is not found' },
  ERR_STATE_GET: { status: 500, grpc: 'Internal', message: 'fail to get {key} from state store {store}: {error}' },
  ERR_STATE_BULK_GET: { status: 500, grpc: 'Internal', message: 'failed getting state in bulk from state store {store}: {error}' },
  ERR_STATE_SAVE: { status: 500, grpc: 'Internal', message: 'failed saving state in state store {store}: {error}' },
  'ERR_STATE_SAVE:etag-mismatch': { status: 409, grpc: 'Aborted', message: 'failed saving state in state store {store}: possible etag mismatch. error from state store: {error}' },
  'ERR_STATE_SAVE:etag-invalid': { status: 400, grpc: 'InvalidArgument', message: 'failed saving state in state store {store}: invalid etag value: {error}' },
  ERR_STATE_DELETE: { status: 500, grpc: 'Internal', message: 'failed deleting state with key {key}: {error}' },
  'ERR_STATE_DELETE:etag-mismatch': { status: 409, grpc: 'Aborted', message: 'failed deleting state with key {key}: possible etag mismatch. error from state store: {error}' },
  'ERR_STATE_DELETE:etag-invalid': { status: 400, grpc: 'InvalidArgument', message: 'failed deleting state with key {key}: invalid etag value: {error}' },
  // gRPC DeleteBulkState (daprd pkg/api/grpc: ErrStateDeleteBulk, errorcodes.StateBulkDelete; HTTP 500 whatever the gRPC code).
  ERR_STATE_BULK_DELETE: { status: 500, grpc: 'Internal', message: 'failed deleting state in state store {store}: {error}' },
  'ERR_STATE_BULK_DELETE:etag-mismatch': { status: 500, grpc: 'Aborted', message: 'failed deleting state in state store {store}: possible etag mismatch. error from state store: {error}' },
  'ERR_STATE_BULK_DELETE:etag-invalid': { status: 500, grpc: 'InvalidArgument', message: 'failed deleting state in state store {store}: invalid etag value: {error}' },
  // gRPC SaveState with an item without key (daprd: apierrors.Basic(InvalidArgument, 400, ERR_STATE_SAVE, ...)).
  'ERR_STATE_SAVE:empty-key': { status: 400, grpc: 'InvalidArgument', message: 'state key cannot be empty' },
  ERR_STATE_TRANSACTION: { status: 500, grpc: 'Internal', message: 'error while executing state transaction: {error}' },
  ERR_NOT_SUPPORTED_STATE_OPERATION: { status: 400, grpc: 'Unimplemented', message: 'operation type {operation} not supported' },
  ERR_STATE_STORE_NOT_SUPPORTED: { status: 500, grpc: 'Unimplemented', message: "state store {store} doesn't support transaction" },
  'ERR_STATE_STORE_NOT_SUPPORTED:query': { status: 500, grpc: 'Internal', message: 'state store does not support querying' },
  ERR_STATE_QUERY: { status: 500, grpc: 'Internal', message: 'failed query in state store {store}: {error}' },

  // ---- secrets (daprd pkg/messages/predefined.go ErrSecret*, pkg/api/errors/secret.go; dapr v1.13-v1.15)
  ERR_SECRET_STORES_NOT_CONFIGURED: { status: 500, grpc: 'FailedPrecondition', message: 'secret store is not configured' },
  ERR_SECRET_STORE_NOT_FOUND: { status: 401, grpc: 'InvalidArgument', message: 'failed finding secret store with key {store}' },
  ERR_PERMISSION_DENIED: { status: 403, grpc: 'PermissionDenied', message: 'access denied by policy to get "{key}" from "{store}"' },
  ERR_SECRET_GET: { status: 500, grpc: 'Internal', message: 'failed getting secret with key {key} from secret store {store}: {error}' },
  'ERR_SECRET_GET:bulk': { status: 500, grpc: 'Internal', message: 'failed getting secrets from secret store {store}: {error}' },

  // ---- distributed lock (alpha; daprd pkg/messages/predefined.go ErrLock*/ErrTryLockFailed/ErrUnlockFailed, pkg/api/universal/lock.go)
  ERR_LOCK_STORE_NOT_CONFIGURED: { status: 500, grpc: 'FailedPrecondition', message: 'lock store is not configured' },
  'ERR_MALFORMED_REQUEST:lock-resource-id': { status: 400, grpc: 'InvalidArgument', message: 'ResourceId is empty in lock store {store}' },
  'ERR_MALFORMED_REQUEST:lock-owner': { status: 400, grpc: 'InvalidArgument', message: 'LockOwner is empty in lock store {store}' },
  'ERR_MALFORMED_REQUEST:lock-expiry': { status: 400, grpc: 'InvalidArgument', message: 'ExpiryInSeconds is not positive in lock store {store}' },
  ERR_LOCK_STORE_NOT_FOUND: { status: 400, grpc: 'InvalidArgument', message: 'lock store {store} not found' },
  ERR_TRY_LOCK: { status: 500, grpc: 'Internal', message: 'failed to try acquiring lock: {error}' },
  ERR_UNLOCK: { status: 500, grpc: 'Internal', message: 'failed to release lock: {error}' },

  // ---- pub/sub (daprd pkg/api/errors/pubsub.go, pkg/api/http/http.go onPublish/onBulkPublish; dapr v1.13-v1.15)
  ERR_PUBSUB_NOT_CONFIGURED: { status: 400, grpc: 'FailedPrecondition', message: 'pubsub is not configured' },
  ERR_PUBSUB_EMPTY: { status: 404, grpc: 'InvalidArgument', message: 'pubsub name is empty' },
  ERR_PUBSUB_NOT_FOUND: { status: 404, grpc: 'InvalidArgument', message: 'pubsub {pubsub} not found' },
  ERR_TOPIC_EMPTY: { status: 404, grpc: 'InvalidArgument', message: 'topic is empty in pubsub {pubsub}' },
  ERR_PUBSUB_REQUEST_METADATA: { status: 400, grpc: 'InvalidArgument', message: 'failed deserializing metadata. Error: {error}' },
  ERR_PUBSUB_PUBLISH_MESSAGE: { status: 500, grpc: 'Internal', message: 'error when publishing to topic {topic} in pubsub {pubsub}: {error}' },
  ERR_PUBSUB_CLOUD_EVENTS_SER: { status: 500, grpc: 'InvalidArgument', message: 'cannot create cloudevent: {error}' },
  'ERR_PUBSUB_CLOUD_EVENTS_SER:envelope': { status: 500, grpc: 'InvalidArgument', message: 'error when marshalling cloud event envelope for topic {topic} pubsub {pubsub}: {error}' },
  ERR_PUBSUB_EVENTS_SER: { status: 400, grpc: 'InvalidArgument', message: 'error when unmarshaling the request for topic {topic} pubsub {pubsub}: {error}' },
  'ERR_PUBSUB_EVENTS_SER:entry': { status: 400, grpc: 'InvalidArgument', message: 'error marshaling events to bytes for topic {topic} pubsub {pubsub}. error: {error}' },
  ERR_PUBSUB_FORBIDDEN: { status: 403, grpc: 'PermissionDenied', message: 'topic {topic} is not allowed for app id {appId}' },
  // gRPC SubscribeTopicEventsAlpha1 (streaming subscriptions): not built; subscriptions are programmatic or declarative.
  'ERR_PUBSUB_NOT_CONFIGURED:streaming': { status: 501, grpc: 'Unimplemented', message: 'crossmesh does not implement streaming subscriptions yet ({method} {path}); subscribe through GET /dapr/subscribe, AppCallback ListTopicSubscriptions or a Subscription resource' },

  // ---- building blocks crossmesh does not implement yet: daprd's "not configured" code of the
  // block, answered 501 so a caller can tell "not built here" from "not configured here".
  'ERR_INVOKE_OUTPUT_BINDING:not-implemented': { status: 501, grpc: 'Unimplemented', message: 'crossmesh does not implement the bindings API yet ({method} {path}); no binding component can be configured' },
  'ERR_CONFIGURATION_STORE_NOT_CONFIGURED:not-implemented': { status: 501, grpc: 'Unimplemented', message: 'crossmesh does not implement the configuration API yet ({method} {path}); no configuration component can be configured' },
  'ERR_ACTOR_RUNTIME_NOT_FOUND:not-implemented': { status: 501, grpc: 'Unimplemented', message: 'crossmesh does not implement the actors API yet ({method} {path})' },
  'ERR_CRYPTO_PROVIDERS_NOT_CONFIGURED:not-implemented': { status: 501, grpc: 'Unimplemented', message: 'crossmesh does not implement the cryptography API yet ({method} {path}); no crypto component can be configured' },
  // daprd's common "API not implemented" code, for the blocks without a "not configured" one.
  'ERR_API_UNIMPLEMENTED:not-implemented': { status: 501, grpc: 'Unimplemented', message: 'crossmesh does not implement the {block} API yet ({method} {path})' },
} as const satisfies Record<string, DaprErrorSpec>;

/** A catalogue entry: an errorCode, or `errorCode:variant`. */
export type DaprErrorId = keyof typeof DAPR_ERRORS;

/** The errorCode an entry answers with (its key without the `:variant`). */
export type DaprErrorCode<K extends DaprErrorId = DaprErrorId> = K extends `${infer C}:${string}` ? C : K;

type Placeholders<S extends string> = S extends `${string}{${infer P}}${infer Rest}` ? P | Placeholders<Rest> : never;

/** The arguments an entry's message template names. */
export type DaprErrorArgs<K extends DaprErrorId> = { readonly [P in Placeholders<(typeof DAPR_ERRORS)[K]['message']>]: string | number };

type ArgsParam<K extends DaprErrorId> = [Placeholders<(typeof DAPR_ERRORS)[K]['message']>] extends [never]
  ? [args?: DaprErrorArgs<K>, options?: ErrorOptions]
  : [args: DaprErrorArgs<K>, options?: ErrorOptions];

/** The errorCode of a catalogue key. */
export function daprErrorCode<K extends DaprErrorId>(id: K): DaprErrorCode<K> {
  const i = id.indexOf(':');
  return (i < 0 ? id : id.slice(0, i)) as DaprErrorCode<K>;
}

/** Fills `{name}` placeholders in one pass (an argument's own braces are not expanded). */
function render(template: string, args: Readonly<Record<string, string | number>> | undefined): string {
  if (template.indexOf('{') < 0) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const v = args?.[name];
    return v === undefined ? whole : String(v);
  });
}

/** A Dapr API failure: answered as `{"errorCode","message"}` with `status` (see respond.ts). */
export class DaprError extends Error {
  readonly id: DaprErrorId;
  readonly errorCode: DaprErrorCode;
  readonly status: number;
  readonly grpc: GrpcCodeName;

  constructor(id: DaprErrorId, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DaprError';
    const spec: DaprErrorSpec = DAPR_ERRORS[id];
    this.id = id;
    this.errorCode = daprErrorCode(id);
    this.status = spec.status;
    this.grpc = spec.grpc;
  }

  /** The numeric gRPC status code. */
  get grpcCode(): number {
    return GRPC_CODES[this.grpc];
  }
}

/**
 * The Dapr error of catalogue entry `id`, its message rendered from `args`; `options.cause`
 * keeps the error it reports (for logs).
 *
 *   daprError('ERR_STATE_GET', { key, store, error: e.message }, { cause: e })
 */
export function daprError<K extends DaprErrorId>(id: K, ...[args, options]: ArgsParam<K>): DaprError {
  return new DaprError(id, render(DAPR_ERRORS[id].message, args as Readonly<Record<string, string | number>> | undefined), options);
}
