/**
 * crossmesh's own error codes (`CM_ERR_*`). Every error crossmesh raises on purpose is a
 * CrossmeshError with a stable code from this table; the HTTP status and Kubernetes
 * `Status.reason` come from here, so the API server, the CLI and the data plane all report the
 * same thing the same way. docs/ERRORS.md documents each code (a test keeps the two in sync).
 */
export const ERRORS = {
  CM_ERR_INVALID: { status: 422, reason: 'Invalid' },
  CM_ERR_BAD_REQUEST: { status: 400, reason: 'BadRequest' },
  CM_ERR_YAML: { status: 400, reason: 'BadRequest' },
  CM_ERR_UNKNOWN_KIND: { status: 400, reason: 'BadRequest' },
  CM_ERR_UNSUPPORTED_KIND: { status: 400, reason: 'BadRequest' },
  CM_ERR_NOT_FOUND: { status: 404, reason: 'NotFound' },
  CM_ERR_ALREADY_EXISTS: { status: 409, reason: 'AlreadyExists' },
  CM_ERR_CONFLICT: { status: 409, reason: 'Conflict' },
  CM_ERR_GONE: { status: 410, reason: 'Expired' },
  CM_ERR_UNAUTHORIZED: { status: 401, reason: 'Unauthorized' },
  CM_ERR_FORBIDDEN: { status: 403, reason: 'Forbidden' },
  CM_ERR_METHOD_NOT_ALLOWED: { status: 405, reason: 'MethodNotAllowed' },
  CM_ERR_TOO_LARGE: { status: 413, reason: 'RequestEntityTooLarge' },
  CM_ERR_UNSUPPORTED_MEDIA: { status: 415, reason: 'UnsupportedMediaType' },
  CM_ERR_UNAVAILABLE: { status: 503, reason: 'ServiceUnavailable' },
  /** The component that got the request is shutting down (e.g. a request racing a sidecar's close). */
  CM_ERR_SHUTTING_DOWN: { status: 503, reason: 'ServiceUnavailable' },
  CM_ERR_TIMEOUT: { status: 504, reason: 'Timeout' },
  CM_ERR_BAD_GATEWAY: { status: 502, reason: 'BadGateway' },
  CM_ERR_INTERNAL: { status: 500, reason: 'InternalError' },
  CM_ERR_USAGE: { status: 400, reason: 'BadRequest' },
  CM_ERR_CONFIG: { status: 500, reason: 'InternalError' },
  /** State: the given etag is not the stored one (or first-write on an existing key). */
  CM_ERR_ETAG_MISMATCH: { status: 409, reason: 'Conflict' },
  /** State: the etag can't be parsed for this store. */
  CM_ERR_ETAG_INVALID: { status: 400, reason: 'BadRequest' },
  /** A backing service (Redis, ...) failed or is unreachable; the operation did not complete. */
  CM_ERR_STORE_UNAVAILABLE: { status: 500, reason: 'InternalError' },
  /** Identity: a SPIFFE ID or trust domain that breaks the SPIFFE rules or crossmesh's `ns/<ns>/sa/<sa>` form. */
  CM_ERR_IDENTITY_INVALID: { status: 400, reason: 'BadRequest' },
  /** Identity: a peer's certificate (chain) refused: expired, not from this mesh's root, no or a bad SPIFFE ID. */
  CM_ERR_CERT_INVALID: { status: 401, reason: 'Unauthorized' },
  /** Identity: a CA certificate or key given to crossmesh can't be used as a CA (not a CA, key mismatch, expired, another trust domain). */
  CM_ERR_CA_INVALID: { status: 400, reason: 'BadRequest' },
  /** Identity: a certificate signing request refused (bad signature, an identity the requester is not entitled to). */
  CM_ERR_CSR_REFUSED: { status: 403, reason: 'Forbidden' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** One problem found in a document: where it is and what is wrong. */
export interface FieldProblem {
  /** JSON path in the object, e.g. `spec.rules[0].portNumber`. */
  field: string;
  message: string;
  /** Kubernetes' `StatusCause.reason` (FieldValueInvalid when unset): FieldValueRequired, FieldManagerConflict... */
  reason?: string;
}

export interface ErrorDetails {
  /** File (or `-` for stdin) the object came from. */
  file?: string;
  /** 1-based index of the document inside the file. */
  document?: number;
  /** 1-based line in the file where the document (or the field) starts. */
  line?: number;
  kind?: string;
  name?: string;
  problems?: FieldProblem[];
}

/** Details plus the standard ES2022 `cause` (the error this one wraps; kept off `details`). */
export interface CrossmeshErrorOptions extends ErrorDetails {
  cause?: unknown;
}

export class CrossmeshError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetails;

  /** `options.cause` becomes the standard `Error.cause`; the other fields are the details. */
  constructor(code: ErrorCode, message: string, options: CrossmeshErrorOptions = {}) {
    const { cause, ...details } = options;
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'CrossmeshError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = details;
  }

  get reason(): string {
    return ERRORS[this.code].reason;
  }
}

export function isCrossmeshError(err: unknown): err is CrossmeshError {
  return err instanceof CrossmeshError;
}

/**
 * Wraps anything thrown into a CrossmeshError (unknown errors become CM_ERR_INTERNAL with the
 * same message, the original kept as `cause`).
 */
export function toCrossmeshError(err: unknown): CrossmeshError {
  if (err instanceof CrossmeshError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new CrossmeshError('CM_ERR_INTERNAL', message, { cause: err });
}

/**
 * One line for a log: the error's message, then each cause down the chain whose message the
 * line does not already contain (`...; caused by ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:6379`).
 */
export function formatError(err: unknown): string {
  let out = err instanceof Error ? err.message : String(err);
  const seen = new Set<unknown>([err]);
  let cur: unknown = err instanceof Error ? err.cause : undefined;
  while (cur !== undefined && cur !== null && !seen.has(cur)) {
    seen.add(cur);
    const msg = cur instanceof Error ? cur.message : String(cur);
    if (msg !== '' && !out.includes(msg)) {
      const code = (cur as { code?: unknown }).code;
      const label = typeof code === 'string' && code !== '' ? code : cur instanceof Error ? cur.name : typeof cur;
      out += `; caused by ${label}: ${msg}`;
    }
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return out;
}
