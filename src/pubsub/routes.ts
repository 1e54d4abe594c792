/**
 * A subscription's routing rules (Dapr "Message routing"): rules in order, each a CEL
 * expression over the variable `event` (the CloudEvent: `event.type == "widget"`,
 * `event.data.price > 100`), the first that holds names the path; else the default path; else
 * the event matches no route (daprd skips it).
 *
 * Expressions are parsed and planned once, when the subscription is read (a syntax error is a
 * CM_ERR_CONFIG naming the rule); evaluation is the planned function over the event. As in
 * daprd (findMatchingRoute), an expression that fails on an event (a field the event lacks) or
 * does not yield a bool is an error for that event, not a non-match: the runtime then
 * dead-letters or retries it. Use `has(event.data.x) && ...` for optional fields.
 */
import { celEnv, isCelError, parse, plan } from '@bufbuild/cel';
import { CrossmeshError } from '../errors.js';

export interface RouteRule {
  match: string;
  path: string;
}

export interface RoutesSpec {
  rules?: RouteRule[];
  default?: string;
}

export interface CompiledRoutes {
  /** The path for the event, undefined when no rule matches and there is no default; throws when a rule fails on it. */
  pathFor(event: Record<string, unknown>): string | undefined;
  /** The rules as written, the default last with match '' (what /v1.0/metadata shows). */
  describe(): RouteRule[];
}

const env = celEnv();

type Evaluate = (ctx: { event: Record<string, unknown> }) => unknown;

function compileMatch(expr: string, where: string): Evaluate {
  let run: Evaluate;
  try {
    run = plan(env, parse(expr)) as unknown as Evaluate;
  } catch (err) {
    throw new CrossmeshError('CM_ERR_CONFIG', `${where}: ${JSON.stringify(expr)} is not a CEL expression: ${(err as Error).message} (write e.g. event.type == "widget")`);
  }
  return run;
}

export function compileRoutes(spec: RoutesSpec, where: string): CompiledRoutes {
  const rules = (spec.rules ?? []).map((r, i) => {
    const at = `${where}: routes.rules[${i}]`;
    if (typeof r?.path !== 'string' || r.path === '') throw new CrossmeshError('CM_ERR_CONFIG', `${at}.path is empty; give the app's path for events that match`);
    if (typeof r.match !== 'string' || r.match.trim() === '') throw new CrossmeshError('CM_ERR_CONFIG', `${at}.match is empty; give a CEL expression (e.g. event.type == "widget") or use routes.default`);
    return { rule: { match: r.match, path: r.path }, run: compileMatch(r.match, `${at}.match`) };
  });
  const def = spec.default ? spec.default : undefined;
  return {
    pathFor(event) {
      for (const { rule, run } of rules) {
        const v = run({ event });
        if (isCelError(v)) throw new Error(`rule ${JSON.stringify(rule.match)} failed on event ${String(event.id)}: ${(v as Error).message}`);
        if (typeof v !== 'boolean') throw new Error(`rule ${JSON.stringify(rule.match)} did not yield a bool`);
        if (v) return rule.path;
      }
      return def;
    },
    describe() {
      const out = rules.map((r) => r.rule);
      if (def !== undefined) out.push({ match: '', path: def });
      return out;
    },
  };
}
