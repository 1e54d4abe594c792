/**
 * Property-based tests (fast-check) of rawjson.ts, the walk that finds the raw text of each
 * `value` in a state API body (the bytes stored as the app sent them). Bodies are generated as
 * JSON TEXT, not through JSON.stringify: numbers beyond 2^53 and with exponents, \uXXXX escapes
 * (surrogate pairs, lone surrogates, either case), strings full of quotes, backslashes, braces and
 * brackets, escaped keys (`"\u0076alue"` is `value`), duplicate members (the last wins, as in
 * JSON.parse), deep nesting and random whitespace. For every body, the raw text located for each
 * item must be exactly the generated text of that item's (last) `value` member and parse to what
 * JSON.parse gives for that member of the whole document.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { forEachElement, forEachMember, rawSaveValues, rawTransactionValues, skipValue } from './rawjson.js';

const RUNS = 300;

// ---- JSON text generators -----------------------------------------------------------------

const ws = fc.array(fc.constantFrom(' ', '\t', '\n', '\r'), { maxLength: 3 }).map((a) => a.join(''));

const hex4 = (n: number, upper: boolean) => {
  const h = n.toString(16).padStart(4, '0');
  return upper ? h.toUpperCase() : h;
};

/** Valid content of a JSON string literal (between the quotes). */
const stringPiece = fc.oneof(
  // Raw characters, any code unit (controls, `"`, `\` and lone surrogates escaped by JSON.stringify).
  fc.string({ unit: 'binary', maxLength: 4 }).map((s) => JSON.stringify(s).slice(1, -1)),
  fc.string({ unit: 'grapheme', maxLength: 3 }).map((s) => JSON.stringify(s).slice(1, -1)),
  fc.constantFrom('\\"', '\\\\', '\\/', '\\b', '\\f', '\\n', '\\r', '\\t', '{', '}', '[', ']', ',', ':', ' '),
  fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.boolean()).map(([n, up]) => `\\u${hex4(n, up)}`),
  fc.tuple(fc.integer({ min: 0x10000, max: 0x10ffff }), fc.boolean()).map(([cp, up]) => {
    const v = cp - 0x10000;
    return `\\u${hex4(0xd800 + (v >> 10), up)}\\u${hex4(0xdc00 + (v & 0x3ff), up)}`;
  }),
);
const jsonString = fc.array(stringPiece, { maxLength: 6 }).map((p) => `"${p.join('')}"`);

const jsonNumber = fc.oneof(
  fc.stringMatching(/^-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?$/),
  fc.bigInt({ min: -(2n ** 128n), max: 2n ** 128n }).map(String),
  fc.constantFrom('9007199254740993', '-9007199254740993', '18446744073709551616', '-0', '0.1e-7', '1e400', '-1E+400', '1E-400', '123456789012345678901234567890e-10'),
);

const leaf = fc.oneof(jsonNumber, jsonString, fc.constantFrom('true', 'false', 'null'));

/** Object keys: random strings and the member names rawjson looks for, some spelled with escapes. */
const key = fc.oneof(
  { weight: 3, arbitrary: jsonString },
  { weight: 2, arbitrary: fc.constantFrom('"value"', '"\\u0076alue"', '"valu\\u0065"', '"\\u0076\\u0061\\u006C\\u0075\\u0065"', '"value "', '"Value"', '"key"', '"request"', '"operations"', '"__proto__"', '"v\\"alue"') },
);

const isValueKey = (k: string) => JSON.parse(k) === 'value';
const isKey = (k: string, name: string) => JSON.parse(k) === name;

const join = (parts: string[], open: string, close: string, emptyWs: string) => (parts.length ? `${open}${parts.join(',')}${close}` : `${open}${emptyWs}${close}`);

const { value: shallowValue } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', maxDepth: 5 }, leaf, tie('array'), tie('object')),
  array: fc.tuple(ws, fc.array(fc.tuple(ws, tie('value'), ws), { maxLength: 4 })).map(([w, els]) => join(els.map(([a, v, b]) => `${a}${v}${b}`), '[', ']', w)),
  object: fc.tuple(ws, fc.array(fc.tuple(ws, key, ws, ws, tie('value'), ws), { maxLength: 4 })).map(([w, ms]) => join(ms.map(([a, k, b, c, v, d]) => `${a}${k}${b}:${c}${v}${d}`), '{', '}', w)),
})) as { value: fc.Arbitrary<string> };

/** A value nested 20..250 levels deep in arrays and objects (some of them `{"value": …}` themselves). */
const deepValue = fc
  .tuple(shallowValue, fc.array(fc.tuple(fc.constantFrom('array', 'object'), key, ws, ws), { minLength: 20, maxLength: 250 }))
  .map(([inner, levels]) => levels.reduce((v, [kind, k, a, b]) => (kind === 'array' ? `[${a}${v}${b}]` : `{${a}${k}:${v}${b}}`), inner));

const anyValue = fc.oneof({ weight: 4, arbitrary: shallowValue }, { weight: 1, arbitrary: deepValue });

interface Member {
  k: string;
  v: string;
  /** For a `request` member: the raw text of its last `value` (undefined: none, or not an object). */
  inner?: string;
}

const member = (k: fc.Arbitrary<string>, v: fc.Arbitrary<string>) => fc.record({ k, v });

/** An object's text from members (random whitespace around every token); `raw` = the last `value` member's text. */
function objectOf(ms: Member[], spaces: string[]): { text: string; raw?: string; members: Member[] } {
  const w = (i: number) => spaces[i % spaces.length] ?? '';
  const text = join(ms.map((m, i) => `${w(4 * i)}${m.k}${w(4 * i + 1)}:${w(4 * i + 2)}${m.v}${w(4 * i + 3)}`), '{', '}', w(0));
  let raw: string | undefined;
  for (const m of ms) if (isValueKey(m.k)) raw = m.v;
  return { text, raw, members: ms };
}

/** A save item / a transaction request: key, value, etag, options, metadata and others, in any order, repeated at times. */
const holder = fc
  .tuple(
    fc.array(
      fc.oneof(
        member(fc.constant('"key"'), jsonString),
        { weight: 3, arbitrary: member(fc.constantFrom('"value"', '"\\u0076alue"', '"valu\\u0065"'), anyValue) },
        member(fc.constant('"etag"'), fc.oneof(jsonString, jsonNumber)),
        member(fc.constant('"options"'), fc.constantFrom('{"concurrency":"first-write"}', '{ "consistency" : "strong" }')),
        member(fc.constant('"metadata"'), fc.constantFrom('{"ttlInSeconds":"10"}', '{}', 'null')),
        member(key, anyValue),
      ),
      { maxLength: 6 },
    ),
    fc.array(ws, { minLength: 1, maxLength: 8 }),
  )
  .map(([ms, spaces]) => objectOf(ms, spaces));

/** An array element that is not an object at all (rawjson must report no value for it). */
const notObject = fc.oneof(leaf, shallowValue.filter((v) => !v.startsWith('{')));

const saveItem = fc.oneof({ weight: 6, arbitrary: holder.map((h) => ({ text: h.text, raw: h.raw })) }, { weight: 1, arbitrary: notObject.map((text) => ({ text, raw: undefined as string | undefined })) });

const saveBody = fc
  .tuple(ws, fc.array(fc.tuple(ws, saveItem, ws), { maxLength: 8 }), ws, ws)
  .map(([w0, items, w1, w2]) => ({
    text: `${w0}${join(items.map(([a, it, b]) => `${a}${it.text}${b}`), '[', ']', w1)}${w2}`,
    raws: items.map(([, it]) => it.raw),
  }));

/** A transaction operation: {operation, request: {key, value, ...}, ...}, or something else. */
const operation = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        fc.array(
          fc.oneof(
            member(fc.constant('"operation"'), fc.constantFrom('"upsert"', '"delete"')),
            { weight: 3, arbitrary: fc.oneof({ weight: 4, arbitrary: holder.map((h) => ({ k: '"request"', v: h.text, inner: h.raw })) }, { weight: 1, arbitrary: notObject.map((v) => ({ k: '"request"', v, inner: undefined })) }) },
            // Other members: any name but `request` (whose raw value the generator must know).
            member(key.filter((k) => !isKey(k, 'request')), anyValue),
          ),
          { maxLength: 4 },
        ),
        fc.array(ws, { minLength: 1, maxLength: 8 }),
      )
      .map(([ms, spaces]) => {
        const o = objectOf(ms as Member[], spaces);
        let raw: string | undefined;
        for (const m of o.members) if (isKey(m.k, 'request')) raw = m.inner;
        return { text: o.text, raw };
      }),
  },
  { weight: 1, arbitrary: notObject.map((text) => ({ text, raw: undefined as string | undefined })) },
);

const operations = fc
  .tuple(ws, fc.array(fc.tuple(ws, operation, ws), { maxLength: 6 }))
  .map(([w, ops]) => ({ text: join(ops.map(([a, o, b]) => `${a}${o.text}${b}`), '[', ']', w), raws: ops.map(([, o]) => o.raw) }));

const transactionBody = fc
  .tuple(
    fc.array(
      fc.oneof(
        { weight: 3, arbitrary: operations.map((ops) => ({ k: '"operations"', v: ops.text, raws: ops.raws as (string | undefined)[] | undefined })) },
        member(fc.constant('"metadata"'), fc.constantFrom('{"ttlInSeconds":"5"}', '{}')).map((m) => ({ ...m, raws: undefined })),
        member(key.filter((k) => !isKey(k, 'operations')), anyValue).map((m) => ({ ...m, raws: undefined })),
      ),
      { maxLength: 4 },
    ),
    fc.array(ws, { minLength: 1, maxLength: 8 }),
  )
  .map(([ms, spaces]) => {
    const o = objectOf(ms, spaces);
    // The last `operations` member wins (JSON.parse's rule).
    let raws: (string | undefined)[] = [];
    for (const m of ms) if (isKey(m.k, 'operations')) raws = m.raws!;
    return { text: o.text, raws };
  });

// ---- helpers ------------------------------------------------------------------------------

/** As the state API gets it: bytes on the wire, decoded as UTF-8. */
const received = (text: string) => Buffer.from(text, 'utf8').toString('utf8');

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Asserts `raw` is one whole JSON value (no surrounding whitespace) parsing to `expected`. */
function assertRawIs(raw: string | undefined, expected: unknown, what: string): void {
  assert.notEqual(raw, undefined, `${what}: no raw text located`);
  assert.doesNotMatch(raw!, /^[ \t\n\r]|[ \t\n\r]$/, `${what}: raw text with surrounding whitespace`);
  assert.deepStrictEqual(JSON.parse(raw!), expected, `${what}: raw text ${JSON.stringify(raw)}`);
}

// ---- properties ---------------------------------------------------------------------------

describe('rawjson (property-based)', () => {
  it('save bodies [{key, value, ...}]: each item\'s raw value is its last `value` member, exactly, and parses like the document', () => {
    fc.assert(
      fc.property(saveBody, ({ text: sent, raws: expectedRaws }) => {
        const text = received(sent);
        const items = JSON.parse(text) as unknown[];
        const raw = rawSaveValues(text);
        assert.equal(raw.length, items.length);
        for (let i = 0; i < items.length; i++) {
          const it = items[i];
          if (isObject(it) && Object.hasOwn(it, 'value')) {
            assertRawIs(raw[i], it.value, `item ${i}`);
            // Lone surrogates do not survive UTF-8: compare with the generated text as received.
            assert.equal(raw[i], received(expectedRaws[i]!), `item ${i}: not the bytes sent`);
          } else {
            assert.equal(raw[i], undefined, `item ${i} has no value`);
            assert.equal(expectedRaws[i], undefined);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('transaction bodies {operations: [{operation, request: {key, value}}]}: each operation\'s raw request value, exactly', () => {
    fc.assert(
      fc.property(transactionBody, ({ text: sent, raws: expectedRaws }) => {
        const text = received(sent);
        const body = JSON.parse(text) as Record<string, unknown>;
        const raw = rawTransactionValues(text);
        const ops = body.operations;
        if (!Array.isArray(ops)) {
          assert.deepEqual(raw, []);
          return;
        }
        assert.equal(raw.length, ops.length);
        for (let i = 0; i < ops.length; i++) {
          const op = ops[i];
          const req = isObject(op) ? op.request : undefined;
          if (isObject(req) && Object.hasOwn(req, 'value')) {
            assertRawIs(raw[i], req.value, `operation ${i}`);
            assert.equal(raw[i], received(expectedRaws[i]!), `operation ${i}: not the bytes sent`);
          } else {
            assert.equal(raw[i], undefined, `operation ${i} has no request value`);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('any document: skipValue spans it, forEachMember / forEachElement spans parse to its members / elements', () => {
    fc.assert(
      fc.property(ws, anyValue, ws, (a, v, b) => {
        const text = received(`${a}${v}${b}`);
        const doc = JSON.parse(text) as unknown;
        assert.equal(skipValue(text, a.length), a.length + received(v).length, 'the value ends where its text ends');
        if (Array.isArray(doc)) {
          const spans: string[] = [];
          forEachElement(text, 0, (n, s, e) => {
            assert.equal(n, spans.length);
            spans.push(text.slice(s, e));
          });
          assert.equal(spans.length, doc.length);
          spans.forEach((s, i) => assertRawIs(s, doc[i], `element ${i}`));
        } else if (isObject(doc)) {
          const last = new Map<string, string>();
          forEachMember(text, 0, (k, s, e) => last.set(k, text.slice(s, e)));
          assert.deepEqual([...last.keys()].sort(), Object.keys(doc).sort());
          for (const [k, s] of last) assertRawIs(s, doc[k], `member ${JSON.stringify(k)}`);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
