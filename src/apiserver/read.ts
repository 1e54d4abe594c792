import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrossmeshError } from '../errors.js';
import type { ResourcePath } from '../api/wire.js';
import type { ObjectRef } from '../store/types.js';
import type { HandlerContext } from './context.js';
import { notFound } from './refusals.js';
import { compileLabelSelector } from './selectors.js';
import { sendJson } from './status.js';
import { serveWatch } from './watch.js';

// The read side: GET of one object, GET of a collection (selectors), watch.

export function getObject(ctx: HandlerContext, _req: IncomingMessage, res: ServerResponse, p: ResourcePath, ref: ObjectRef): void {
  const obj = ctx.store.get(ref);
  if (!obj) throw notFound(p);
  sendJson(res, 200, obj);
}

export function listOrWatch(ctx: HandlerContext, req: IncomingMessage, res: ServerResponse, url: URL, p: ResourcePath): void {
  const q = url.searchParams;
  const selector = compileLabelSelector(q.get('labelSelector'));
  const name = fieldSelectorName(q.get('fieldSelector'));
  if (q.get('watch') === 'true' || q.get('watch') === '1') {
    const timeout = q.get('timeoutSeconds');
    return serveWatch(ctx.store, req, res, {
      storageKey: p.kind.storageKey,
      namespace: p.namespace,
      resourceVersion: q.get('resourceVersion') ?? undefined,
      selector,
      name,
      bookmarks: q.get('allowWatchBookmarks') === 'true',
      timeoutSeconds: timeout ? Number(timeout) : undefined,
      bookmarkIntervalMs: ctx.bookmarkIntervalMs,
    });
  }
  const list = ctx.store.list({ storageKey: p.kind.storageKey, namespace: p.namespace });
  const items = list.items.filter((o) => (name === undefined || o.metadata.name === name) && (!selector || selector(o)));
  sendJson(res, 200, {
    kind: `${p.kind.kind}List`,
    apiVersion: p.group ? `${p.group}/${p.version}` : p.version,
    metadata: { resourceVersion: list.resourceVersion },
    items,
  });
}

/** Only `metadata.name=X` (and `metadata.namespace=X`, implied by the path) are supported, as informers use. */
function fieldSelectorName(text: string | null): string | undefined {
  if (!text) return undefined;
  let name: string | undefined;
  for (const part of text.split(',')) {
    const m = /^metadata\.(name|namespace)==?(.*)$/.exec(part.trim());
    if (!m) throw new CrossmeshError('CM_ERR_BAD_REQUEST', `fieldSelector: only metadata.name=VALUE is supported (got "${part}")`);
    if (m[1] === 'name') name = m[2];
  }
  return name;
}

