/**
 * Request-target checks, done BEFORE route matching so nothing but a clean origin-form path
 * can select a route or reach a backend. Refused (the gateway answers 400):
 * - anything not starting with `/` (absolute-form `http://...`, authority-form, `*`);
 * - dot segments `/./`, `/../` (also at the end), empty segments `//`;
 * - percent-encoded `.` `/` `\` and control characters (`%2e`, `%2f`, `%5c`, `%00`-`%1f`, `%7f`),
 *   so no decoding layer behind us can turn them into traversal; this also refuses legitimate
 *   encoded dots in a segment, which is the price of not having to decode;
 * - a raw backslash, control character or DEL (node's parser refuses most of these already).
 * The same check runs on a rewritten path, which must also stay origin-form.
 */
// One precompiled expression: a single linear scan per request.
const BAD = /[\\\x00-\x1f\x7f]|%(?:2[eEfF]|5[cC]|[01][0-9a-fA-F]|7[fF])|\/\.\.?(?:\/|$)|\/\//;

/** True when `path` (no query) is a safe origin-form path. */
export function isSafePath(path: string): boolean {
  return path.charCodeAt(0) === 47 && !BAD.test(path);
}
