/**
 * Pub/sub counters of a sidecar, by pubsub and topic (the registry's default labels add the
 * cluster, namespace and app id):
 *
 *   crossmesh_sidecar_pubsub_published_total        messages the broker stored
 *   crossmesh_sidecar_pubsub_publish_failed_total   publishes refused (broker down, …)
 *   crossmesh_sidecar_pubsub_delivered_total        deliveries the app acknowledged (SUCCESS)
 *   crossmesh_sidecar_pubsub_retried_total          deliveries that failed and stay pending (RETRY, errors)
 *   crossmesh_sidecar_pubsub_dropped_total          messages dropped (DROP, 404, expired, no route)
 *   crossmesh_sidecar_pubsub_deadlettered_total     messages moved to the dead-letter topic
 *
 * Counted in plain nested Maps and read by prom-client at scrape time (no label strings per
 * message).
 */
import { Counter, type Registry } from 'prom-client';

type Kind = 'published' | 'publish_failed' | 'delivered' | 'retried' | 'dropped' | 'deadlettered';
const HELP: Record<Kind, string> = {
  published: 'Messages published and stored by the broker, by pubsub and topic',
  publish_failed: 'Publishes the broker did not take, by pubsub and topic',
  delivered: 'Messages the app acknowledged (SUCCESS), by pubsub and topic',
  retried: 'Deliveries that failed and are retried later (RETRY, app errors), by pubsub and topic',
  dropped: 'Messages dropped (DROP, 404, expired, no matching route), by pubsub and topic',
  deadlettered: 'Messages sent to the subscription\'s dead-letter topic, by pubsub and topic',
};

export class PubSubMetrics {
  private readonly counts = new Map<Kind, Map<string, Map<string, number>>>();

  constructor(registry?: Registry, prefix = 'crossmesh_sidecar') {
    for (const kind of Object.keys(HELP) as Kind[]) {
      const byPubsub = new Map<string, Map<string, number>>();
      this.counts.set(kind, byPubsub);
      if (!registry) continue;
      new Counter({
        name: `${prefix}_pubsub_${kind}_total`,
        help: HELP[kind],
        labelNames: ['pubsub', 'topic'],
        registers: [registry],
        collect() {
          this.reset();
          for (const [pubsub, byTopic] of byPubsub) for (const [topic, n] of byTopic) this.inc({ pubsub, topic }, n);
        },
      });
    }
  }

  private add(kind: Kind, pubsub: string, topic: string, n: number): void {
    const byPubsub = this.counts.get(kind)!;
    let byTopic = byPubsub.get(pubsub);
    if (!byTopic) byPubsub.set(pubsub, (byTopic = new Map()));
    byTopic.set(topic, (byTopic.get(topic) ?? 0) + n);
  }

  /** The current count (tests, status). */
  value(kind: Kind, pubsub: string, topic: string): number {
    return this.counts.get(kind)!.get(pubsub)?.get(topic) ?? 0;
  }

  published(pubsub: string, topic: string, n = 1): void { this.add('published', pubsub, topic, n); }
  publishFailed(pubsub: string, topic: string, n = 1): void { this.add('publish_failed', pubsub, topic, n); }
  delivered(pubsub: string, topic: string): void { this.add('delivered', pubsub, topic, 1); }
  retried(pubsub: string, topic: string): void { this.add('retried', pubsub, topic, 1); }
  dropped(pubsub: string, topic: string): void { this.add('dropped', pubsub, topic, 1); }
  deadLettered(pubsub: string, topic: string): void { this.add('deadlettered', pubsub, topic, 1); }
}
