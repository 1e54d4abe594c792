/**
 * The one error catalogue. Every error crossmesh raises on purpose is a CrossmeshError with a
 * stable code from this table; the HTTP status and Kubernetes `Status.reason` come from here,
 * so the API server, the CLI and the data plane all report the same thing the same way.
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
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** One problem found in a document: where it is and what is wrong. */
export interface FieldProblem {
  /** JSON path in the object, e.g. `spec.rules[0].portNumber`. */
  field: string;
  message: string;
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

export class CrossmeshError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message);
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

/** Wraps anything thrown into a CrossmeshError (unknown errors become CM_ERR_INTERNAL). */
export function toCrossmeshError(err: unknown): CrossmeshError {
  if (err instanceof CrossmeshError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new CrossmeshError('CM_ERR_INTERNAL', message);
}
