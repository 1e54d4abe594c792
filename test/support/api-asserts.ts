/** Shared assertions for the api tests (not a test file itself). */
import assert from 'node:assert/strict';
import { CrossmeshError, type ErrorCode } from '../../src/errors.js';
import { validateObject } from '../../src/api/validation.js';

/** Runs fn, asserts it throws a CrossmeshError with `code`, returns the error. */
export function throwsCm(fn: () => unknown, code: ErrorCode): CrossmeshError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CrossmeshError, `expected CrossmeshError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, nothing was thrown`);
}

/** Asserts validateObject refuses obj with a problem at `field` whose message matches `re`. */
export function invalid(obj: unknown, field: string, re?: RegExp): CrossmeshError {
  const err = throwsCm(() => validateObject(obj), 'CM_ERR_INVALID');
  const p = err.details.problems?.find((x) => x.field === field);
  assert.ok(p, `no problem at ${field}; got ${JSON.stringify(err.details.problems)}`);
  assert.ok(err.message.includes(`${field}: `), `message does not name ${field}: ${err.message}`);
  if (re) assert.match(p.message, re);
  return err;
}
