/**
 * Where a sidecar's subscriptions come from: the app (programmatic: GET /dapr/subscribe or
 * AppCallback ListTopicSubscriptions, parsed by src/pubsub/subscriptions.ts) and the
 * `Subscription` resources of the app's namespace (declarative, followed by an Informer, scoped
 * to the app id). The parser (and the CEL evaluator it compiles routes with) is imported only
 * when there is a subscription to parse: a sidecar of an app without any never loads them.
 */
import { EventEmitter } from 'node:events';
import { kindFor } from '../../api/index.js';
import type { ApiClient } from '../../client/api-client.js';
import { Informer } from '../../client/informer.js';
import { toCrossmeshError } from '../../errors.js';
import type { ParsedSubscriptions } from '../../pubsub/subscriptions.js';
import { log } from '../../util/log.js';
import type { AppSubscriberChannel } from './app-channel.js';
import type { DeclarativeSource, SubscriptionRoute } from './subscriber.js';

/** The app's own subscriptions, read through its channel. */
export function programmaticSource(channel: AppSubscriberChannel, appId: string, where: string, label: string): () => Promise<SubscriptionRoute[]> {
  return async () => {
    const body = await channel.listSubscriptions();
    if (Array.isArray(body) && body.length === 0) return [];
    const { programmaticSubscriptions } = await import('../../pubsub/subscriptions.js');
    const { routes, problems } = programmaticSubscriptions(body, `app ${appId} ${where}`);
    for (const p of problems) log.warn(`${label}: subscription left out: ${p}`);
    return routes;
  };
}

/** The Subscription resources of `namespace` that apply to `appId`, live. */
export class DeclarativeSubscriptions extends EventEmitter<{ change: [] }> implements DeclarativeSource {
  private readonly informer: Informer;
  private routes: SubscriptionRoute[] = [];
  private lastProblems = '';

  constructor(client: ApiClient, namespace: string, private readonly appId: string, private readonly label: string) {
    super();
    this.informer = new Informer(client, kindFor('dapr.io/v2alpha1', 'Subscription'), { namespace, minBackoffMs: 100, maxBackoffMs: 2000 });
    const update = () => void this.parse().then(({ routes, problems }) => {
      const said = problems.join('\n');
      // Logged when they change, not on every event of the informer.
      if (said !== this.lastProblems) for (const p of problems) log.warn(`${this.label}: subscription left out: ${p}`);
      this.lastProblems = said;
      this.routes = routes;
      this.emit('change');
    });
    for (const e of ['add', 'update', 'delete', 'synced'] as const) this.informer.on(e, update);
  }

  /** Parses in the order the informer's events came (a later list never lands before an earlier one). */
  private parsing: Promise<unknown> = Promise.resolve();
  private parse(): Promise<ParsedSubscriptions> {
    const objs = this.informer.list();
    const next = this.parsing.then(async () => {
      if (objs.length === 0) return { routes: [], problems: [] };
      const { declarativeSubscriptions } = await import('../../pubsub/subscriptions.js');
      return declarativeSubscriptions(objs, this.appId);
    });
    this.parsing = next.catch(() => undefined);
    return next;
  }

  async start(timeoutMs: number): Promise<void> {
    await this.informer.start().waitForSync(timeoutMs).catch((err) => log.warn(`${this.label}: Subscriptions not synced yet (${toCrossmeshError(err).message}); still trying`));
    await this.parsing;
  }

  list(): SubscriptionRoute[] {
    return this.routes;
  }

  stop(): void {
    this.informer.stop();
  }
}
