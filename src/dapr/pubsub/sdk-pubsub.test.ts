/**
 * The official JS SDK's pub/sub, unchanged, against a real sidecar: DaprServer subscribes (plain,
 * CEL routes, dead letter, raw payload, bulk) and DaprClient publishes (publish, publishBulk,
 * raw payload), in HTTP mode (GET /dapr/subscribe, POST to the routes) and in gRPC mode
 * (--app-protocol grpc: AppCallback ListTopicSubscriptions / OnTopicEvent, Dapr PublishEvent).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CommunicationProtocolEnum, DaprClient, DaprPubSubStatusEnum, DaprServer, LogLevel } from '@dapr/dapr';
import type { ApiClient } from '../../client/api-client.js';
import type { RunningCluster } from '../../cluster/cluster.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/sidecar.js';
import { freePort } from '../../util/net.js';
import { clusterWithNamespace, COMPONENT, component, eventually, NS } from '../../../test/support/dapr-fixtures.js';

for (const protocol of ['http', 'grpc'] as const) {
  describe(`@dapr/dapr DaprServer/DaprClient pub/sub over ${protocol.toUpperCase()}`, () => {
    let cluster: RunningCluster;
    let client: ApiClient;
    let car: RunningSidecar;
    let server: DaprServer;
    let dapr: DaprClient;
    const got: Record<string, unknown[]> = {};
    const push = (k: string) => async (data: unknown) => {
      (got[k] ??= []).push(data);
      return DaprPubSubStatusEnum.SUCCESS;
    };
    const comm = protocol === 'http' ? CommunicationProtocolEnum.HTTP : CommunicationProtocolEnum.GRPC;

    before(async () => {
      ({ cluster, client } = await clusterWithNamespace());
      await client.create(COMPONENT, component('pubsub', 'pubsub.in-memory', [{ name: 'redeliverInterval', value: '200ms' }]));
      const appPort = await freePort();
      car = await startSidecar({ identity: { clusterName: 'cluster-1', namespace: NS, appId: 'sdkapp' }, api: cluster.endpoint, servicePort: 3000, appPort, appProtocol: protocol });
      const daprPort = String(protocol === 'http' ? car.ports.http : car.ports.grpc);
      server = new DaprServer({ serverHost: '127.0.0.1', serverPort: String(appPort), communicationProtocol: comm, clientOptions: { daprHost: '127.0.0.1', daprPort }, logger: { level: LogLevel.Error } });
      await server.pubsub.subscribe('pubsub', 'orders', push('orders'));
      await server.pubsub.subscribeWithOptions('pubsub', 'items', {
        route: { rules: [{ match: 'event.data.kind == "widget"', path: '/widgets' }], default: '/items-other' },
      });
      server.pubsub.subscribeToRoute('pubsub', 'items', '/widgets', push('widgets'));
      server.pubsub.subscribeToRoute('pubsub', 'items', '/items-other', push('other'));
      await server.pubsub.subscribeWithOptions('pubsub', 'flaky', {
        callback: async () => DaprPubSubStatusEnum.RETRY,
        deadLetterTopic: 'flaky-dead',
      });
      // Dead letters are messages of their own topic: the app subscribes to it like to any other.
      await server.pubsub.subscribe('pubsub', 'flaky-dead', push('dead'));
      await server.pubsub.subscribe('pubsub', 'raw', push('raw'), undefined, { rawPayload: 'true' });
      await server.start();
      dapr = new DaprClient({ daprHost: '127.0.0.1', daprPort, communicationProtocol: comm, logger: { level: LogLevel.Error } });
      await eventually(() => car.subscriber!.status().filter((s) => s.state === 'subscribed').length >= 5, 15_000, 'the SDK app\'s subscriptions');
    });

    after(async () => {
      await dapr?.stop().catch(() => undefined);
      // The sidecar first: the SDK's gRPC server stops only once its clients (the sidecar's channel) are gone.
      await car?.close();
      await server?.stop().catch(() => undefined);
      await client?.close();
      await cluster?.close();
    });

    it('publish → the subscribe callback gets the data', async () => {
      const res = await dapr.pubsub.publish('pubsub', 'orders', { orderId: 7 });
      assert.equal(res.error, undefined);
      await eventually(() => got.orders?.some((d: any) => d?.orderId === 7), 5000, 'the order');
    });

    it('routes: a CEL rule sends widgets to their route, the rest to the default', async () => {
      await dapr.pubsub.publish('pubsub', 'items', { kind: 'widget', n: 1 });
      await dapr.pubsub.publish('pubsub', 'items', { kind: 'gadget', n: 2 });
      await eventually(() => got.widgets?.length && got.other?.length, 5000, 'both routes');
      assert.deepEqual(got.widgets, [{ kind: 'widget', n: 1 }]);
      assert.deepEqual(got.other, [{ kind: 'gadget', n: 2 }]);
    });

    it('a callback answering RETRY: the message reaches the dead-letter callback', async () => {
      await dapr.pubsub.publish('pubsub', 'flaky', { doomed: true });
      await eventually(() => got.dead?.length, 5000, 'the dead letter');
      assert.deepEqual(got.dead, [{ doomed: true }]);
    });

    it('raw payload: published and subscribed raw, the callback gets the bytes', async () => {
      const res = await dapr.pubsub.publish('pubsub', 'raw', { plain: 'json' }, { metadata: { rawPayload: 'true' } });
      assert.equal(res.error, undefined);
      const [data] = await eventually(() => (got.raw?.length ? got.raw : undefined), 5000, "the raw message");
      // The SDK decodes data_base64 for the callback.
      const text = typeof data === 'string' ? data : Buffer.isBuffer(data) || data instanceof Uint8Array ? Buffer.from(data as Uint8Array).toString() : JSON.stringify(data);
      assert.match(text, /"plain":\s*"json"/);
    });

    it('publishBulk: every entry delivered, no failed entries', async () => {
      const res = await dapr.pubsub.publishBulk('pubsub', 'orders', [{ orderId: 100 }, { orderId: 101 }, { orderId: 102 }]);
      assert.deepEqual(res.failedMessages, []);
      await eventually(() => [100, 101, 102].every((id) => got.orders?.some((d: any) => d?.orderId === id)), 5000, 'the bulk entries');
    });
  });
}
