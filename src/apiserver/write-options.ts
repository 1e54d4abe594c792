/**
 * The query parameters (and DELETE body) of writes, validated as Kubernetes validates them:
 * `dryRun` (only `All`), `fieldValidation` (Ignore | Warn | Strict, default Warn as in
 * Kubernetes ≥ 1.27), `fieldManager` (≤ 128 printable characters; required for apply; else
 * derived from the User-Agent), `force` (apply only), `propagationPolicy`,
 * `gracePeriodSeconds`, and a `DeleteOptions` body with preconditions.
 */
import type { IncomingMessage } from 'node:http';
import { CrossmeshError } from '../errors.js';
import { isPlainObject } from '../api/meta.js';

export type FieldValidation = 'Ignore' | 'Warn' | 'Strict';
export type Verb = 'create' | 'update' | 'patch' | 'apply' | 'delete';

export interface WriteOptions {
  dryRun: boolean;
  fieldValidation: FieldValidation;
  /** The manager recorded in managedFields: `fieldManager`, else the User-Agent's product. */
  manager: string;
  force: boolean;
}

export interface DeleteOptions {
  dryRun: boolean;
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
}

const bad = (message: string) => new CrossmeshError('CM_ERR_BAD_REQUEST', message);

function unsupported(field: string, value: string, supported: string[]): CrossmeshError {
  return bad(`${field}: Unsupported value: ${JSON.stringify(value)}: supported values: ${supported.map((s) => JSON.stringify(s)).join(', ')}`);
}

function parseDryRun(values: string[]): boolean {
  for (const v of values) if (v !== 'All') throw unsupported('dryRun', v, ['All']);
  return values.length > 0;
}

/** Kubernetes: the manager is at most 128 characters, all printable. */
function checkManager(name: string): string {
  if (name.length > 128) throw bad(`fieldManager: Too long: may not be longer than 128 (got ${name.length} characters)`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) throw bad(`fieldManager: Invalid value: ${JSON.stringify(name)}: must consist of printable characters`);
  return name;
}

/** Kubernetes' default manager: the User-Agent up to its first '/', e.g. `kubectl` (at most 128 characters). */
export function managerFromUserAgent(ua: string | undefined): string {
  const product = (ua ?? '').split('/')[0].trim().slice(0, 128);
  // eslint-disable-next-line no-control-regex
  return product.replace(/[\u0000-\u001f\u007f-\u009f]/g, '') || 'unknown';
}

function parseBool(name: string, v: string | null): boolean {
  if (v === null || v === '' || v === 'false' || v === '0') return false;
  if (v === 'true' || v === '1') return true;
  throw bad(`${name}: Invalid value: ${JSON.stringify(v)}: must be true or false`);
}

export function parseWriteOptions(q: URLSearchParams, req: IncomingMessage, verb: Verb): WriteOptions {
  const dryRun = parseDryRun(q.getAll('dryRun'));
  const fv = q.get('fieldValidation') ?? '';
  let fieldValidation: FieldValidation = 'Warn';
  if (fv !== '') {
    if (fv !== 'Ignore' && fv !== 'Warn' && fv !== 'Strict') throw unsupported('fieldValidation', fv, ['Ignore', 'Warn', 'Strict']);
    fieldValidation = fv;
  }
  const given = q.get('fieldManager');
  if (verb === 'apply' && (given === null || given === '')) {
    throw bad('PATCH with application/apply-patch+yaml (server-side apply): fieldManager is required for apply requests; add ?fieldManager=NAME');
  }
  const manager = given !== null && given !== '' ? checkManager(given) : managerFromUserAgent(req.headers['user-agent']);
  const forceText = q.get('force');
  const force = parseBool('force', forceText);
  if (forceText !== null && verb !== 'apply') throw bad('force: Forbidden: may not be specified for non-apply patch');
  return { dryRun, fieldValidation, manager, force };
}

const POLICIES = ['Foreground', 'Background', 'Orphan'] as const;

/** DELETE: query parameters and an optional DeleteOptions body (`kubectl delete` sends one). */
export function parseDeleteOptions(q: URLSearchParams, body: unknown): DeleteOptions {
  const b = body === undefined ? {} : body;
  if (!isPlainObject(b)) throw bad('the DELETE body must be a DeleteOptions object');
  if (b.kind !== undefined && b.kind !== 'DeleteOptions') throw bad(`the DELETE body must be a DeleteOptions object, not ${String(b.kind)}`);
  const dryRunValues = [...q.getAll('dryRun'), ...(Array.isArray(b.dryRun) ? b.dryRun.map(String) : [])];
  const dryRun = parseDryRun(dryRunValues);
  let policy: string | undefined = q.get('propagationPolicy') ?? (typeof b.propagationPolicy === 'string' ? b.propagationPolicy : undefined);
  if (policy === undefined) {
    const orphan = q.get('orphanDependents') ?? (typeof b.orphanDependents === 'boolean' ? String(b.orphanDependents) : undefined);
    if (orphan !== undefined && orphan !== null) policy = parseBool('orphanDependents', orphan) ? 'Orphan' : 'Background';
  }
  if (policy !== undefined && !(POLICIES as readonly string[]).includes(policy)) throw unsupported('propagationPolicy', policy, [...POLICIES]);
  const graceText = q.get('gracePeriodSeconds') ?? (b.gracePeriodSeconds === undefined || b.gracePeriodSeconds === null ? undefined : String(b.gracePeriodSeconds));
  let gracePeriodSeconds: number | undefined;
  if (graceText !== undefined && graceText !== null) {
    gracePeriodSeconds = Number(graceText);
    if (!Number.isSafeInteger(gracePeriodSeconds) || gracePeriodSeconds < 0) throw bad(`gracePeriodSeconds: Invalid value: ${JSON.stringify(graceText)}: must be a non-negative integer`);
  }
  let preconditions: DeleteOptions['preconditions'];
  if (b.preconditions !== undefined && b.preconditions !== null) {
    if (!isPlainObject(b.preconditions)) throw bad('preconditions: must be an object {uid, resourceVersion}');
    preconditions = {
      uid: typeof b.preconditions.uid === 'string' ? b.preconditions.uid : undefined,
      resourceVersion: typeof b.preconditions.resourceVersion === 'string' ? b.preconditions.resourceVersion : undefined,
    };
  }
  return { dryRun, propagationPolicy: policy as DeleteOptions['propagationPolicy'], gracePeriodSeconds, preconditions };
}
