/**
 * Raw spans of JSON values: the state API stores a value's bytes as the app sent them, so the
 * body is parsed with JSON.parse (fast, validating) and the `value` members are then located by
 * a non-validating walk over the same (already valid) text.
 */

const WS = new Uint8Array(128);
WS[0x20] = WS[0x09] = WS[0x0a] = WS[0x0d] = 1;

function skipWs(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i);
    if (c < 128 && WS[c]) i++;
    else return i;
  }
}

/** Index after the string starting at `i` (a `"`). */
function skipString(s: string, i: number): number {
  let j = i + 1;
  for (;;) {
    const q = s.indexOf('"', j);
    if (q < 0) return s.length;
    let b = q - 1;
    while (s.charCodeAt(b) === 92 /* \ */) b--;
    if ((q - 1 - b) % 2 === 0) return q + 1;
    j = q + 1;
  }
}

/** Index after the value starting at `i` (valid JSON assumed). */
export function skipValue(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === 34) return skipString(s, i);
  if (c === 123 || c === 91) {
    let depth = 0;
    let j = i;
    while (j < s.length) {
      const d = s.charCodeAt(j);
      if (d === 34) { j = skipString(s, j); continue; }
      if (d === 123 || d === 91) depth++;
      else if (d === 125 || d === 93) {
        depth--;
        if (depth === 0) return j + 1;
      }
      j++;
    }
    return j;
  }
  // number, true, false, null
  let j = i;
  while (j < s.length) {
    const d = s.charCodeAt(j);
    if (d === 44 || d === 125 || d === 93 || (d < 128 && WS[d])) break;
    j++;
  }
  return j;
}

/** Calls `fn(key, start, end)` for each member of the object starting at `i`. */
export function forEachMember(s: string, i: number, fn: (key: string, start: number, end: number) => void): void {
  i = skipWs(s, i);
  if (s.charCodeAt(i) !== 123) return;
  i = skipWs(s, i + 1);
  while (i < s.length && s.charCodeAt(i) !== 125) {
    const kEnd = skipString(s, i);
    const rawKey = s.slice(i + 1, kEnd - 1);
    const key = rawKey.indexOf('\\') >= 0 ? (JSON.parse(s.slice(i, kEnd)) as string) : rawKey;
    i = skipWs(s, kEnd);
    i = skipWs(s, i + 1); // ':'
    const end = skipValue(s, i);
    fn(key, i, end);
    i = skipWs(s, end);
    if (s.charCodeAt(i) === 44) i = skipWs(s, i + 1);
  }
}

/** Calls `fn(index, start, end)` for each element of the array starting at `i`. */
export function forEachElement(s: string, i: number, fn: (index: number, start: number, end: number) => void): void {
  i = skipWs(s, i);
  if (s.charCodeAt(i) !== 91) return;
  i = skipWs(s, i + 1);
  let n = 0;
  while (i < s.length && s.charCodeAt(i) !== 93) {
    const end = skipValue(s, i);
    fn(n++, i, end);
    i = skipWs(s, end);
    if (s.charCodeAt(i) === 44) i = skipWs(s, i + 1);
  }
}

/** Raw text of the `value` member of the object at [start, end), or undefined (last one wins, as JSON.parse). */
export function rawMember(s: string, start: number, name: string): string | undefined {
  let out: string | undefined;
  forEachMember(s, start, (k, a, b) => {
    if (k === name) out = s.slice(a, b);
  });
  return out;
}

/** Save body `[{key, value, ...}, ...]`: the raw `value` text of each item. */
export function rawSaveValues(s: string): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  forEachElement(s, 0, (n, a) => {
    out[n] = rawMember(s, a, 'value');
  });
  return out;
}

/** Transaction body `{operations: [{operation, request: {key, value}}]}`: the raw `value` text of each operation. */
export function rawTransactionValues(s: string): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  forEachMember(s, 0, (k, a) => {
    if (k !== 'operations') return;
    out.length = 0;
    forEachElement(s, a, (n, oa) => {
      let v: string | undefined;
      forEachMember(s, oa, (ok, ra) => {
        if (ok === 'request') v = rawMember(s, ra, 'value');
      });
      out[n] = v;
    });
  });
  return out;
}
