/**
 * Topic scoping of a pub/sub component (Dapr's component metadata, "Scope topic access"):
 *
 *   allowedTopics:      "orders,payments"      only these topics exist for every app
 *   protectedTopics:    "audit"                only apps a scope lists for the topic may use it
 *   publishingScopes:   "app1=orders;app2="    app1 may publish only to orders, app2 to nothing
 *   subscriptionScopes: "app3=orders,payments" the same for subscribing
 *
 * An app a scope does not list is limited by allowedTopics / protectedTopics only. Parsed once
 * when the component loads; a check is two Set lookups.
 */
import { CrossmeshError } from '../../errors.js';

export interface TopicScopes {
  canPublish(topic: string): boolean;
  canSubscribe(topic: string): boolean;
}

function list(v: string | undefined): string[] {
  return (v ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/** `app1=t1,t2;app2=` → the topics listed for `appId`, or undefined when the app is not listed. */
function scopedTopics(v: string | undefined, appId: string, field: string, component: string): Set<string> | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  let found: Set<string> | undefined;
  for (const part of v.split(';')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw new CrossmeshError('CM_ERR_CONFIG', `pubsub ${component}: metadata ${field} entry ${JSON.stringify(part)} is not app=topic1,topic2 (e.g. "app1=orders;app2=")`);
    if (part.slice(0, eq).trim() === appId) found = new Set([...(found ?? []), ...list(part.slice(eq + 1))]);
  }
  return found;
}

export function compileTopicScopes(metadata: Readonly<Record<string, string>>, appId: string, component: string): TopicScopes {
  const allowed = list(metadata.allowedTopics);
  const allowedSet = allowed.length > 0 ? new Set(allowed) : undefined;
  const protectedSet = new Set(list(metadata.protectedTopics));
  const pub = scopedTopics(metadata.publishingScopes, appId, 'publishingScopes', component);
  const sub = scopedTopics(metadata.subscriptionScopes, appId, 'subscriptionScopes', component);
  const check = (scoped: Set<string> | undefined, topic: string): boolean => {
    if (allowedSet !== undefined && !allowedSet.has(topic)) return false;
    if (scoped !== undefined) return scoped.has(topic);
    return !protectedSet.has(topic);
  };
  return {
    canPublish: (topic) => check(pub, topic),
    canSubscribe: (topic) => check(sub, topic),
  };
}
