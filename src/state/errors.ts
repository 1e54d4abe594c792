/**
 * The state stores' errors, worded once so every backend reports the same thing the same way
 * (the Dapr layer maps the codes to ERR_STATE_SAVE / ERR_STATE_DELETE / ...).
 */
import { CrossmeshError } from '../errors.js';

export function etagMismatch(key: string, what = 'possible etag mismatch'): CrossmeshError {
  return new CrossmeshError('CM_ERR_ETAG_MISMATCH', `${what} for key ${key}`);
}

export function etagInvalid(key: string, etag: string, expected: string): CrossmeshError {
  return new CrossmeshError('CM_ERR_ETAG_INVALID', `invalid etag ${JSON.stringify(etag)} for key ${key}: expected ${expected}`);
}

/** `cause`: the error that revealed the problem, kept for logs; `kind`: what the component is ("state store", "pubsub"). */
export function configError(store: string, message: string, cause?: unknown, kind = 'state store'): CrossmeshError {
  return new CrossmeshError('CM_ERR_CONFIG', `${kind} ${store}: ${message}`, { cause });
}

export function badRequest(message: string): CrossmeshError {
  return new CrossmeshError('CM_ERR_BAD_REQUEST', message);
}
