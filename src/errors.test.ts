import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CrossmeshError,
  DAPR_ERRORS,
  DaprError,
  daprError,
  daprErrorCode,
  ERRORS,
  formatError,
  GRPC_CODES,
  toCrossmeshError,
  type DaprErrorId,
  type GrpcCodeName,
} from './errors.js';
import { parseGoDuration } from './api/duration.js';
import { H1Server } from './proxy/h1/server.js';
import { proxy } from './proxy/h1/proxy.js';
import { UpstreamRegistry } from './proxy/h1/upstream.js';
import { createStateStore } from './state/factory.js';

// dist/src/errors.test.js → the repository root.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCS = [join(ROOT, 'README.md'), ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(ROOT, 'docs', f))];

/** The rows of every Markdown table in `text`, cells trimmed, `\|` unescaped; header and separator rows included. */
function tables(text: string): string[][][] {
  const out: string[][][] = [];
  let cur: string[][] | undefined;
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('|')) {
      cur = undefined;
      continue;
    }
    const cells = t.slice(1, t.endsWith('|') && !t.endsWith('\\|') ? -1 : undefined).split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
    if (!cur) out.push((cur = []));
    cur.push(cells);
  }
  return out;
}

function unquote(cell: string): string {
  const m = /^`(.*)`$/.exec(cell);
  assert.ok(m, `expected a \`code\` cell, got ${cell}`);
  return m[1];
}

/** The body rows of the table of docs/ERRORS.md whose first header cell is `first`. */
function docTable(first: string): string[][] {
  const t = tables(readFileSync(join(ROOT, 'docs', 'ERRORS.md'), 'utf8')).find((rows) => rows[0][0] === first);
  assert.ok(t, `docs/ERRORS.md has no table starting with "${first}"`);
  return t.slice(2);
}

describe('error catalogue', () => {
  it('docs/ERRORS.md lists every CM_ERR_* code with its HTTP status and reason, and nothing else', () => {
    const documented = new Map<string, string>();
    for (const [code, http, reason] of docTable('Code')) {
      const c = unquote(code);
      assert.ok(!documented.has(c), `${c} is documented twice`);
      documented.set(c, `${http} ${unquote(reason)}`);
    }
    const catalogue = new Map(Object.entries(ERRORS).map(([c, e]) => [c, `${e.status} ${e.reason}`]));
    for (const [c, v] of catalogue) assert.equal(documented.get(c), v, `${c}: docs/ERRORS.md says "${documented.get(c) ?? 'nothing'}", the catalogue "${v}"`);
    for (const c of documented.keys()) assert.ok(catalogue.has(c), `docs/ERRORS.md documents ${c}, which is not in src/errors/cm.ts`);
  });

  it('docs/ERRORS.md lists every Dapr answer (errorCode, HTTP, gRPC, message), and nothing else', () => {
    const row = (code: string, status: number, grpc: GrpcCodeName, message: string) => `${code} | ${status} | ${grpc} (${GRPC_CODES[grpc]}) | ${message}`;
    const documented: string[] = [];
    for (const [code, http, grpc, message] of docTable('errorCode')) {
      const m = /^`(\w+)` \((\d+)\)$/.exec(grpc);
      assert.ok(m && m[1] in GRPC_CODES, `${code}: gRPC cell "${grpc}" is not \`Name\` (number)`);
      assert.equal(Number(m[2]), GRPC_CODES[m[1] as GrpcCodeName], `${code}: ${m[1]} is gRPC code ${GRPC_CODES[m[1] as GrpcCodeName]}`);
      documented.push(row(unquote(code), Number(http), m[1] as GrpcCodeName, unquote(message)));
    }
    const catalogue = (Object.keys(DAPR_ERRORS) as DaprErrorId[]).map((id) => row(daprErrorCode(id), DAPR_ERRORS[id].status, DAPR_ERRORS[id].grpc, DAPR_ERRORS[id].message));
    assert.equal(new Set(documented).size, documented.length, 'docs/ERRORS.md lists a Dapr answer twice');
    for (const r of catalogue) assert.ok(documented.includes(r), `not in docs/ERRORS.md: ${r}`);
    for (const r of documented) assert.ok(catalogue.includes(r), `docs/ERRORS.md lists an answer src/errors/dapr.ts does not have: ${r}`);
  });

  it('every code README.md and docs/*.md mention is in the catalogue', () => {
    const daprCodes = new Set<string>((Object.keys(DAPR_ERRORS) as DaprErrorId[]).map((id) => daprErrorCode(id)));
    let seen = 0;
    for (const file of DOCS) {
      const text = readFileSync(file, 'utf8');
      for (const [code] of text.matchAll(/\b(?:CM_)?ERR_[A-Z0-9_]*[A-Z0-9]\b/g)) {
        seen++;
        if (code.startsWith('CM_')) assert.ok(code in ERRORS, `${file} mentions ${code}, which is not in src/errors/cm.ts`);
        else assert.ok(daprCodes.has(code), `${file} mentions ${code}, which is not in src/errors/dapr.ts`);
      }
    }
    assert.ok(seen > 40, `only ${seen} mentions found: is the pattern broken?`);
  });

  it('daprError renders the template, with the errorCode, HTTP and gRPC status of the entry', () => {
    const e = daprError('ERR_STATE_SAVE:etag-mismatch', { store: 'statestore', error: 'possible etag mismatch for key a||k' });
    assert.ok(e instanceof DaprError && e instanceof Error);
    assert.equal(e.errorCode, 'ERR_STATE_SAVE');
    assert.equal(e.id, 'ERR_STATE_SAVE:etag-mismatch');
    assert.equal(e.status, 409);
    assert.equal(e.grpc, 'Aborted');
    assert.equal(e.grpcCode, 10);
    assert.equal(e.message, 'failed saving state in state store statestore: possible etag mismatch. error from state store: possible etag mismatch for key a||k');
    // An argument's own braces are not expanded.
    assert.equal(daprError('ERR_MALFORMED_REQUEST', { detail: 'expected {"keys": [...]} not {key}' }).message, 'failed deserializing HTTP body: expected {"keys": [...]} not {key}');
    assert.equal(daprError('ERR_HEALTH_NOT_READY').message, 'dapr is not ready');
    assert.equal(daprError('ERR_NOT_SUPPORTED_STATE_OPERATION', { operation: 7 }).message, 'operation type 7 not supported');
    for (const id of Object.keys(DAPR_ERRORS) as DaprErrorId[]) {
      assert.match(daprErrorCode(id), /^ERR_[A-Z_]+$/, id);
      assert.ok(DAPR_ERRORS[id].grpc in GRPC_CODES, id);
    }
  });

  it('ids and template arguments are checked at compile time', () => {
    // Each line below must fail to compile; `tsc` fails the build if one stops failing.
    // @ts-expect-error: no such entry
    assert.throws(() => daprError('ERR_STATE_GTE', { key: 'k', store: 's', error: 'e' }));
    // @ts-expect-error: "store" is missing
    daprError('ERR_STATE_GET', { key: 'k', error: 'e' });
    // @ts-expect-error: "stor" is not an argument of the template
    daprError('ERR_STATE_STORE_NOT_FOUND', { stor: 's' });
    // @ts-expect-error: the template takes arguments
    daprError('ERR_STATE_QUERY');
    // @ts-expect-error: not a CM_ERR_* code
    assert.throws(() => new CrossmeshError('CM_ERR_NOPE', 'x'));
  });
});

describe('error causes', () => {
  it('CrossmeshError keeps the standard cause, off its details; toCrossmeshError passes it on', () => {
    const root = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const e = new CrossmeshError('CM_ERR_BAD_GATEWAY', 'upstream x refused the connection', { kind: 'Service', cause: root });
    assert.equal(e.cause, root);
    assert.deepEqual(e.details, { kind: 'Service' });
    assert.equal(new CrossmeshError('CM_ERR_INTERNAL', 'no cause').cause, undefined);
    assert.ok(!('cause' in new CrossmeshError('CM_ERR_INTERNAL', 'no cause')));

    const wrapped = toCrossmeshError(root);
    assert.equal(wrapped.code, 'CM_ERR_INTERNAL');
    assert.equal(wrapped.message, root.message);
    assert.equal(wrapped.cause, root);
    assert.equal(toCrossmeshError(e), e);
    assert.equal(toCrossmeshError('a string').cause, 'a string');
  });

  it('formatError shows the root of a chain once', () => {
    const root = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
    const mid = new CrossmeshError('CM_ERR_STORE_UNAVAILABLE', 'state store s: cannot reach redis', { cause: root });
    const top = daprError('ERR_STATE_GET', { key: 'k', store: 's', error: mid.message }, { cause: mid });
    assert.equal(formatError(top), 'fail to get k from state store s: state store s: cannot reach redis; caused by ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:6379');
    // A cause whose message is already in the line is not repeated.
    assert.equal(formatError(toCrossmeshError(root)), 'connect ECONNREFUSED 127.0.0.1:6379');
    const loop = new Error('a');
    (loop as { cause?: unknown }).cause = loop;
    assert.equal(formatError(loop), 'a');
  });

  it('a proxy hop to a closed port keeps the socket error as cause (before any byte was sent)', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const registry = new UpstreamRegistry();
    let result: Awaited<ReturnType<typeof proxy>> | undefined;
    const hop = new H1Server({ onRequest: (req) => void proxy(req, registry, { key: `127.0.0.1:${port}`, target: { host: '127.0.0.1', port }, label: 'closed port' }, { path: req.url }).then((r) => { result = r; }) });
    const hopPort = await hop.listen(0, '127.0.0.1');
    try {
      assert.equal((await fetch(`http://127.0.0.1:${hopPort}/x`)).status, 502);
      assert.equal(result?.error?.code, 'CM_ERR_BAD_GATEWAY');
      assert.equal(result?.failedBeforeSend, true);
      assert.equal((result?.error?.cause as { code?: string } | undefined)?.code, 'ECONNREFUSED');
    } finally {
      await hop.close(100);
      await registry.close(100);
    }
  });

  it('a real redis store that cannot connect reports CM_ERR_STORE_UNAVAILABLE with the socket error as cause', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const store = await createStateStore('state.redis', { name: 'statestore', metadata: { redisHost: `127.0.0.1:${port}`, dialTimeout: '1s' }, dataDir: '/nonexistent' });
    const err = await store.init().then(() => undefined, (e: unknown) => e);
    await store.close();
    assert.ok(err instanceof CrossmeshError, String(err));
    assert.equal(err.code, 'CM_ERR_STORE_UNAVAILABLE');
    assert.ok(err.cause instanceof Error, 'the ioredis error is kept');
    assert.match(formatError(err), /ECONNREFUSED/);
  });

  it('bad redis metadata is CM_ERR_CONFIG wrapping the parse error', async () => {
    const err = await createStateStore('state.redis', { name: 's', metadata: { redisHost: 'h:99999' }, dataDir: '/nonexistent' }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof CrossmeshError);
    assert.equal(err.code, 'CM_ERR_CONFIG');
    assert.match(err.message, /^state store s: metadata redisHost="h:99999" is not host:port; give e\.g\. "localhost:6379"/);
    assert.ok(err.cause instanceof CrossmeshError && err.cause.code === 'CM_ERR_CONFIG');
  });

  it('a bad duration is CM_ERR_INVALID', () => {
    for (const bad of ['', '10', '10d', 'x5s']) {
      assert.throws(() => parseGoDuration(bad), (e: unknown) => e instanceof CrossmeshError && e.code === 'CM_ERR_INVALID', bad);
    }
  });
});
