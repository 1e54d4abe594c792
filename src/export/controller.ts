/**
 * Member-side ServiceExport validation: runs in every cluster process, over the cluster's own
 * store. Sets each export's `Valid` condition (keeping conditions others write, e.g. the
 * control plane's `Conflict`) and re-evaluates whenever an export or a Service changes.
 * Writes only when a condition actually changes, so its own writes end the loop.
 */
import { KINDS, type KubeObject } from '../api/index.js';
import type { ResourceCache } from '../client/cache.js';
import { CrossmeshError } from '../errors.js';
import type { ResourceStore } from '../store/types.js';
import { log } from '../util/log.js';
import { mergeCondition, VALID } from '../api/conditions.js';
import { evaluateExports, refOf } from './evaluate.js';
import { Coalescer } from '../util/coalesce.js';

const EXPORTS_KEY = KINDS.find((k) => k.kind === 'ServiceExport')!.storageKey;

export interface ExportControllerOptions {
  store: ResourceStore;
  /** All ServiceExports of the cluster. */
  exports: ResourceCache;
  /** All Services of the cluster. */
  services: ResourceCache;
  /** Clock for lastTransitionTime (tests). */
  now?: () => string;
}

export class ExportController {
  private readonly passes = new Coalescer(() => this.reconcile());
  private stopped = false;
  private readonly onChange = () => this.schedule();
  /** Status writes made (for tests and metrics). */
  writes = 0;

  constructor(private readonly opts: ExportControllerOptions) {}

  start(): this {
    for (const c of [this.opts.exports, this.opts.services]) {
      c.on('add', this.onChange);
      c.on('update', this.onChange);
      c.on('delete', this.onChange);
    }
    this.reconcile();
    return this;
  }

  /** Coalesces a burst of events into one pass (passes spaced by their cost: util/coalesce.ts). */
  schedule(): void {
    if (!this.stopped) this.passes.trigger();
  }

  /** One full pass: evaluate every export, write the `Valid` conditions that changed. */
  reconcile(): void {
    const { store, exports, services } = this.opts;
    const verdicts = evaluateExports(exports.list(), (ns, name) => services.get(name, ns));
    const now = (this.opts.now ?? (() => new Date().toISOString()))();
    for (const [ref, verdict] of verdicts) {
      const [namespace, name] = splitRef(ref);
      // Most passes change nothing: compare with the cached object before reading the store.
      const cached = exports.get(name, namespace);
      if (cached && sameValid(cached, verdict)) continue;
      const objRef = { storageKey: EXPORTS_KEY, namespace, name };
      // The stored object, not the cache: merge with the very latest conditions.
      const current = store.get(objRef);
      if (!current || current.metadata.deletionTimestamp) continue;
      const conditions = mergeCondition(
        current.status?.conditions,
        {
          type: VALID,
          status: verdict.valid ? 'True' : 'False',
          reason: verdict.valid ? 'Success' : 'Failed',
          message: verdict.message,
          observedGeneration: current.metadata.generation,
        },
        now,
      );
      if (!conditions) continue;
      try {
        store.update(objRef, { ...current, status: { ...(current.status ?? {}), conditions } } as KubeObject, { statusOnly: true });
        this.writes++;
      } catch (err) {
        if (err instanceof CrossmeshError && err.code === 'CM_ERR_NOT_FOUND') continue;
        log.warn(`export controller: cannot write the status of ServiceExport ${refOf(current)}: ${(err as Error).message}`);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    for (const c of [this.opts.exports, this.opts.services]) {
      c.off('add', this.onChange);
      c.off('update', this.onChange);
      c.off('delete', this.onChange);
    }
  }
}

/** Whether the object's Valid condition already says what the verdict says (for its generation). */
function sameValid(obj: KubeObject, verdict: { valid: boolean; message: string }): boolean {
  const c = (obj.status?.conditions as { type: string; status: string; message?: string; observedGeneration?: number }[] | undefined)?.find((x) => x.type === VALID);
  return c !== undefined && c.status === (verdict.valid ? 'True' : 'False') && c.message === verdict.message && c.observedGeneration === obj.metadata.generation;
}

function splitRef(ref: string): [string, string] {
  const i = ref.indexOf('/');
  return [ref.slice(0, i), ref.slice(i + 1)];
}
