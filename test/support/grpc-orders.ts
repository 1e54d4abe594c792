/**
 * A typed client of examples/grpc-orders for the tests and the bench: grpc-js with the
 * example's own orders.proto. `authority` names the mesh service when dialing a sidecar's
 * outbound port directly (h2c with prior knowledge); `metadata` goes on every call (e.g.
 * `dapr-app-id` for Dapr's gRPC proxying).
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const ORDERS_PROTO = fileURLToPath(new URL('../../../examples/grpc-orders/orders.proto', import.meta.url));

export interface Order { id: string; item: string; quantity: number }
export interface OrderReply { cluster: string; instance: string; id: string; message: string }

type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, r: OrderReply) => void) => void;
type ServerStream = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<OrderReply>;

let ctor: grpc.ServiceClientConstructor | undefined;

function ordersCtor(): grpc.ServiceClientConstructor {
  if (ctor === undefined) {
    const def = protoLoader.loadSync(ORDERS_PROTO, { keepCase: false, longs: String, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { crossmesh: { examples: { orders: { Orders: grpc.ServiceClientConstructor } } } };
    ctor = pkg.crossmesh.examples.orders.Orders;
  }
  return ctor;
}

export interface OrdersClient {
  newOrder(order: Order, opts?: { deadlineMs?: number }): Promise<OrderReply>;
  watch(count: number, intervalMs: number, opts?: { deadlineMs?: number }): AsyncIterable<OrderReply>;
  close(): void;
}

export function ordersClient(address: string, opts: { authority?: string; metadata?: Record<string, string>; channelOptions?: grpc.ChannelOptions } = {}): OrdersClient {
  const C = ordersCtor();
  // A test process is no app of the mesh: it must not pick up a proxy from its environment.
  const c = new C(address, grpc.credentials.createInsecure(), {
    'grpc.enable_http_proxy': 0,
    ...(opts.authority !== undefined ? { 'grpc.default_authority': opts.authority } : {}),
    ...opts.channelOptions,
  }) as unknown as grpc.Client & { NewOrder: Unary; WatchOrders: ServerStream };
  const md = () => {
    const m = new grpc.Metadata();
    for (const [k, v] of Object.entries(opts.metadata ?? {})) m.set(k, v);
    return m;
  };
  return {
    newOrder(order, o = {}) {
      return new Promise((resolve, reject) => c.NewOrder(order, md(), { deadline: Date.now() + (o.deadlineMs ?? 10_000) }, (err, r) => (err ? reject(err) : resolve(r))));
    },
    watch(count, intervalMs, o = {}) {
      return c.WatchOrders({ count, intervalMs }, md(), { deadline: Date.now() + (o.deadlineMs ?? 30_000) }) as unknown as AsyncIterable<OrderReply>;
    },
    close: () => c.close(),
  };
}
