import { CrossmeshError } from '../errors.js';

/**
 * List continue tokens: opaque to clients (base64url JSON), carrying the revision the first page
 * was read at and the key of the last item served, so every page is read at the same revision
 * (store.list atRevision) as Kubernetes reads every chunk at one etcd revision. Revision -1 =
 * an inconsistent continuation at the current revision (what a 410 for a compacted token offers).
 */
export interface ContinueToken {
  revision: number;
  namespace: string;
  name: string;
}

const VERSION = 'crossmesh/1';

export function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify({ v: VERSION, rv: t.revision, ns: t.namespace, n: t.name })).toString('base64url');
}

export function decodeContinue(text: string): ContinueToken {
  let doc: { v?: unknown; rv?: unknown; ns?: unknown; n?: unknown };
  try {
    doc = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw invalid('it is not a token this server issued');
  }
  if (doc === null || typeof doc !== 'object' || doc.v !== VERSION) throw invalid('it is not a token this server issued');
  if (typeof doc.rv !== 'number' || !Number.isSafeInteger(doc.rv) || doc.rv < -1 || doc.rv === 0) throw invalid('its resource version is not valid');
  if (typeof doc.ns !== 'string' || typeof doc.n !== 'string' || doc.n === '') throw invalid('its start key is not valid');
  return { revision: doc.rv, namespace: doc.ns, name: doc.n };
}

function invalid(why: string): CrossmeshError {
  return new CrossmeshError('CM_ERR_BAD_REQUEST', `continue key is not valid: ${why}; pass the metadata.continue of the previous page unchanged, or list again without continue`);
}

export const CONTINUE_EXPIRED = 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.';
export const LIST_EXPIRED = 'The resourceVersion for the provided list is too old.';
