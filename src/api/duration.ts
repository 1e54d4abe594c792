/**
 * Go `time.ParseDuration` semantics, because Dapr (written in Go) parses Component
 * `initTimeout` and every Resiliency duration with it; a manifest Dapr accepts must be
 * accepted here and vice versa.
 */
import { CrossmeshError } from '../errors.js';

// Milliseconds per unit. Longer unit names first so `ms` wins over `m`.
const UNITS: ReadonlyArray<readonly [string, number]> = [
  ['ns', 1e-6],
  ['us', 1e-3],
  ['\u00b5s', 1e-3], // micro sign, accepted by Go
  ['\u03bcs', 1e-3], // Greek mu, accepted by Go
  ['ms', 1],
  ['s', 1000],
  ['m', 60_000],
  ['h', 3_600_000],
];

/**
 * Parses a Go duration string ('5s', '1m30s', '500ms', '1.5h', '-2s', '0') into milliseconds
 * (fractional below 1 ms). Throws CM_ERR_INVALID saying what is wrong on anything else.
 */
export function parseGoDuration(s: string): number {
  if (typeof s !== 'string') throw invalid(`a duration must be a string like "5s" (got ${typeof s})`);
  const orig = s;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw invalid(`invalid duration "${orig}": empty; write a number and a unit, e.g. "5s"`);
  let total = 0;
  while (s !== '') {
    const num = /^(\d*)(\.\d*)?/.exec(s)!;
    const digits = num[0];
    if (digits === '' || digits === '.') {
      throw invalid(`invalid duration "${orig}": expected a number at "${s}" (e.g. "5s", "1m30s", "500ms")`);
    }
    s = s.slice(digits.length);
    const unit = UNITS.find(([u]) => s.startsWith(u));
    if (!unit) {
      const m = /^[^\d.]*/.exec(s)![0];
      throw invalid(
        m === ''
          ? `invalid duration "${orig}": missing unit after ${digits} (use ns, us, ms, s, m or h)`
          : `invalid duration "${orig}": unknown unit "${m}" (use ns, us, ms, s, m or h)`,
      );
    }
    s = s.slice(unit[0].length);
    total += Number(digits) * unit[1];
  }
  return sign * total;
}

function invalid(message: string): CrossmeshError {
  return new CrossmeshError('CM_ERR_INVALID', message);
}

/** True when `s` is a non-negative Go duration. */
export function isDuration(s: unknown): boolean {
  if (typeof s !== 'string') return false;
  try {
    return parseGoDuration(s) >= 0;
  } catch {
    return false;
  }
}
