/**
 * Older apiVersions of kinds crossmesh stores in one version, converted when a manifest is read
 * (kept out of the schemas so reading a manifest's kind does not load them).
 */
import { isPlainObject } from './meta.js';

/**
 * A dapr.io/v1alpha1 Subscription as the stored dapr.io/v2alpha1 one (spec.route → spec.routes.default);
 * any other object unchanged.
 */
export function upgradeSubscription<T>(obj: T): T {
  const o = obj as Record<string, any>;
  if (!o || o.kind !== 'Subscription' || o.apiVersion !== 'dapr.io/v1alpha1' || !isPlainObject(o.spec)) return obj;
  const { route, ...spec } = o.spec;
  const routes = isPlainObject(spec.routes) ? { ...spec.routes } : {};
  if (typeof route === 'string' && route !== '' && !routes.default) routes.default = route;
  return { ...o, apiVersion: 'dapr.io/v2alpha1', spec: { ...spec, routes } } as T;
}
