import type { ResourcePath } from '../api/wire.js';
import { CrossmeshError } from '../errors.js';

// Refusals shared by the read and write handlers, worded as Kubernetes words them.

export function notFound(p: ResourcePath): CrossmeshError {
  const where = p.namespace ? ` in namespace "${p.namespace}"` : '';
  return new CrossmeshError('CM_ERR_NOT_FOUND', `${p.kind.plural} "${p.name}" not found${where}`, { kind: p.kind.kind, name: p.name });
}

