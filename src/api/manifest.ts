/**
 * Multi-document manifest parsing, as `kubectl apply -f` reads files: every document is
 * parsed and validated before anything is returned, so a file applies all-or-nothing, and
 * every problem is reported with file, document index and the line of the offending field.
 */
import { isMap, isNode, isScalar, isSeq, LineCounter, parseAllDocuments, type Node } from 'yaml';
import { CrossmeshError, type ErrorCode, type FieldProblem } from '../errors.js';
import { kindFor, type KindInfo } from './kinds.js';
import { isPlainObject, type PathSeg } from './meta.js';
import type { KubeObject } from './types.js';
import { upgradeSubscription } from './upgrade.js';
import { checkObject, envelopeProblems, formatPath, objectLabel } from './validate.js';

export interface ParsedDocument {
  object: KubeObject;
  /** 1-based index of the document in the file (empty documents count, as a reader counts `---`). */
  document: number;
  /** 1-based line where the document (or the List item) starts. */
  line: number;
}

/** One problem in a manifest file; `details.problems` of the thrown error holds these. */
export interface ManifestProblem extends FieldProblem {
  code: ErrorCode;
  file: string;
  document: number;
  line: number;
  /** `Kind/name` of the object, absent for YAML syntax errors. */
  object?: string;
}

type YamlNode = Node | null | undefined;

/** Line of the deepest yaml node found along `path` (a key's own line for mapping entries). */
function lineAlong(node: YamlNode, path: readonly PathSeg[], lc: LineCounter, fallback: number): number {
  let line = fallback;
  let cur: unknown = node;
  for (const seg of path) {
    if (isMap(cur)) {
      const pair = cur.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
      if (!pair) break;
      const at = isNode(pair.key) && pair.key.range ? pair.key.range[0] : isNode(pair.value) && pair.value.range ? pair.value.range[0] : undefined;
      if (at !== undefined) line = lc.linePos(at).line;
      cur = pair.value;
    } else if (isSeq(cur) && typeof seg === 'number') {
      const item = cur.items[seg];
      if (!isNode(item)) break;
      if (item.range) line = lc.linePos(item.range[0]).line;
      cur = item;
    } else break;
  }
  return line;
}

function nodeAt(node: YamlNode, path: readonly PathSeg[]): YamlNode {
  let cur: unknown = node;
  for (const seg of path) {
    if (isMap(cur)) cur = cur.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg))?.value;
    else if (isSeq(cur) && typeof seg === 'number') cur = cur.items[seg];
    else return undefined;
  }
  return isNode(cur) ? cur : undefined;
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** For a refused workload carrying dapr.io annotations: the `crossmesh run` line that replaces it. */
function runCommandFor(obj: Record<string, any>, namespace: string): string | undefined {
  const podTemplate = obj.kind === 'Pod' ? obj : (obj.spec?.template ?? obj.spec?.jobTemplate?.spec?.template);
  const ann = podTemplate?.metadata?.annotations;
  const appId = isPlainObject(ann) ? ann['dapr.io/app-id'] : undefined;
  if (typeof appId !== 'string' || appId === '') return undefined;
  const port = ann!['dapr.io/app-port'];
  const container = podTemplate?.spec?.containers?.[0];
  const argv = [...(container?.command ?? []), ...(container?.args ?? [])].filter((a: unknown) => typeof a === 'string');
  const ns = typeof obj.metadata?.namespace === 'string' ? obj.metadata.namespace : namespace;
  return `crossmesh run -n ${ns} --app-id ${appId}${port !== undefined ? ` --app-port ${port}` : ''} -- ${
    argv.length ? argv.map(shellQuote).join(' ') : '<the command that starts the app>'
  }`;
}

function isListKind(o: Record<string, any>): boolean {
  return (o.kind === 'List' || (typeof o.kind === 'string' && o.kind.endsWith('List'))) && Array.isArray(o.items);
}

const HINTS: Partial<Record<ErrorCode, string>> = {
  CM_ERR_YAML: 'fix the YAML syntax at the lines shown (indentation, a missing ":" or an unclosed quote are the usual causes)',
  CM_ERR_UNSUPPORTED_KIND: 'remove the unsupported documents and start those apps with `crossmesh run` instead',
  CM_ERR_UNKNOWN_KIND: 'correct apiVersion/kind of the documents shown',
  CM_ERR_INVALID: 'fix the fields shown',
};

/**
 * Parses every document of a manifest file. Returns the validated, defaulted objects in
 * file order, or throws ONE CrossmeshError listing every problem in the file.
 */
export function parseManifests(text: string, opts: { file: string; defaultNamespace?: string }): ParsedDocument[] {
  const file = opts.file;
  const defaultNamespace = opts.defaultNamespace || 'default';
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc });
  const out: ParsedDocument[] = [];
  const problems: ManifestProblem[] = [];

  const handle = (raw: unknown, node: YamlNode, document: number, line: number): void => {
    const label = objectLabel(raw);
    const add = (code: ErrorCode, path: readonly PathSeg[], message: string) =>
      problems.push({ code, file, document, line: lineAlong(node, path, lc, line), object: label, field: formatPath(path), message });
    const env = envelopeProblems(raw);
    if (env.length) {
      for (const p of env) add('CM_ERR_INVALID', p.path, p.message);
      return;
    }
    // A dapr.io/v1alpha1 Subscription is stored as the v2alpha1 one (the only version served).
    let obj = upgradeSubscription(raw as Record<string, any>);
    let info: KindInfo;
    try {
      info = kindFor(obj.apiVersion, obj.kind);
    } catch (err) {
      if (!(err instanceof CrossmeshError)) throw err;
      let message = err.message;
      const run = err.code === 'CM_ERR_UNSUPPORTED_KIND' ? runCommandFor(obj, defaultNamespace) : undefined;
      if (run) message += ` For this ${obj.kind}: ${run}`;
      add(err.code, ['kind'], message);
      return;
    }
    if (info.namespaced && (obj.metadata === undefined || isPlainObject(obj.metadata))) {
      const md = obj.metadata ?? {};
      if (md.namespace === undefined || md.namespace === null || md.namespace === '') {
        obj = { ...obj, metadata: { ...md, namespace: defaultNamespace } };
      }
    }
    const res = checkObject(obj);
    if (!res.ok) {
      for (const p of res.problems) add('CM_ERR_INVALID', p.path, p.message);
      return;
    }
    out.push({ object: res.value, document, line });
  };

  docs.forEach((doc, i) => {
    const document = i + 1;
    const root = doc.contents as YamlNode;
    const docLine = root?.range ? lc.linePos(root.range[0]).line : doc.range ? lc.linePos(doc.range[0]).line : 1;
    if (doc.errors.length) {
      for (const e of doc.errors) {
        const pos = e.linePos?.[0];
        const first = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
        problems.push({
          code: 'CM_ERR_YAML',
          file,
          document,
          line: pos?.line ?? docLine,
          field: '',
          message: `YAML syntax error${pos ? ` at column ${pos.col}` : ''}: ${first}`,
        });
      }
      return;
    }
    if (!root) return; // empty or comment-only document
    let js: unknown;
    try {
      js = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      problems.push({ code: 'CM_ERR_YAML', file, document, line: docLine, field: '', message: `YAML error: ${(err as Error).message}` });
      return;
    }
    if (js === null || js === undefined) return;
    if (isPlainObject(js) && isListKind(js)) {
      (js.items as unknown[]).forEach((item, j) => {
        const node = nodeAt(root, ['items', j]);
        handle(item, node, document, node?.range ? lc.linePos(node.range[0]).line : docLine);
      });
      return;
    }
    handle(js, root, document, docLine);
  });

  if (problems.length) {
    const codes = new Set(problems.map((p) => p.code));
    const code: ErrorCode = codes.has('CM_ERR_YAML') ? 'CM_ERR_YAML' : problems[0].code;
    const lines = problems.map(
      (p) => `${p.file}: document ${p.document} (line ${p.line})${p.object ? `, ${p.object}` : ''}: ${p.field ? `${p.field}: ` : ''}${p.message}`,
    );
    const todo = (['CM_ERR_YAML', 'CM_ERR_UNSUPPORTED_KIND', 'CM_ERR_UNKNOWN_KIND', 'CM_ERR_INVALID'] as const)
      .filter((c) => codes.has(c))
      .map((c) => HINTS[c]);
    const n = problems.length;
    lines.push(
      `${n} problem${n === 1 ? '' : 's'} in ${file}; nothing from it was accepted. To fix: ${todo.join('; ')}, then apply the whole file again.`,
    );
    const first = problems[0];
    const [kind, name] = first.object ? first.object.split('/') : [undefined, undefined];
    throw new CrossmeshError(code, lines.join('\n'), {
      file,
      document: first.document,
      line: first.line,
      kind: kind === '(no kind)' ? undefined : kind,
      name: name === '(no name)' ? undefined : name,
      problems,
    });
  }
  return out;
}
