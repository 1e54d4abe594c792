import type { ResourcePath } from '../api/wire.js';
import { CrossmeshError } from '../errors.js';

// Refusals shared by the read and write handlers, worded as Kubernetes words them
// (kubectl prints them after `Error from server (<reason>): `).

/** `serviceexports.flomesh.io`, `namespaces`: the group-qualified resource Kubernetes names in its messages. */
export function groupResource(p: ResourcePath): string {
  return p.group ? `${p.kind.plural}.${p.group}` : p.kind.plural;
}

export function notFound(p: ResourcePath, name = p.name): CrossmeshError {
  return new CrossmeshError('CM_ERR_NOT_FOUND', `${groupResource(p)} "${name}" not found`, { kind: p.kind.kind, name });
}

export function alreadyExists(p: ResourcePath, name: string): CrossmeshError {
  return new CrossmeshError('CM_ERR_ALREADY_EXISTS', `${groupResource(p)} "${name}" already exists`, { kind: p.kind.kind, name });
}

/** A write whose resourceVersion precondition no longer holds. */
export function modified(p: ResourcePath, name: string, cause?: unknown): CrossmeshError {
  return new CrossmeshError(
    'CM_ERR_CONFLICT',
    `Operation cannot be fulfilled on ${groupResource(p)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { kind: p.kind.kind, name, cause },
  );
}
