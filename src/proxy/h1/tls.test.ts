/**
 * The proxy core over mesh mTLS, end to end with real TLS 1.3 on loopback and real certificates
 * from the mesh CA: client → plaintext hop ("outbound sidecar") → mTLS UpstreamPool → mTLS
 * H1Server ("inbound sidecar") → plaintext app. Direct and through a CONNECT splice (the
 * gateway's mesh port in miniature), keep-alive and session resumption, every refusal, and a
 * certificate rotation under load.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect as netConnect, createServer as netServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect, type SecureContext, type TLSSocket } from 'node:tls';
import { CrossmeshError } from '../../errors.js';
import { generateRootCa, issueIntermediate, issueWorkloadCert, type CertificateAuthority } from '../../identity/ca.js';
import { createWorkloadCsr } from '../../identity/csr.js';
import { mtlsClientContext, mtlsClientOptions, mtlsServerOptions, type PeerIdentity, type WorkloadCredentials } from '../../identity/mesh-tls.js';
import type { ForwardResult } from './exchange.js';
import { proxy, type Upstream } from './proxy.js';
import { H1Server, type InboundRequest } from './server.js';
import { UpstreamRegistry, type UpstreamTarget, type UpstreamTls } from './upstream.js';

const TD = 'crossmesh.local';
const CART = `spiffe://${TD}/ns/shop/sa/cart`;
const PAY = `spiffe://${TD}/ns/billing/sa/payments`;

async function workload(ca: CertificateAuthority, spiffeId: string, now?: Date): Promise<WorkloadCredentials> {
  const { keyPem, csrPem } = await createWorkloadCsr(spiffeId);
  const issued = await issueWorkloadCert(ca, { csrPem, spiffeId, now });
  return { keyPem, chainPem: issued.chainPem, roots: [ca.rootPem], trustDomain: TD };
}

interface Refusal { reason: CrossmeshError; remote: string }

/** Resolves when `pred` holds for an item pushed to `list` (already there or still to come); fails after 5 s. */
function waitFor<T>(list: T[], pred: (x: T) => boolean, what: string): Promise<T> {
  const found = list.find(pred);
  if (found !== undefined) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const push = list.push.bind(list);
    const timer = setTimeout(() => reject(new Error(`no ${what} within 5 s; seen: ${JSON.stringify(list.map(String))}`)), 5000);
    list.push = (...items: T[]) => {
      const n = push(...items);
      const hit = items.find(pred);
      if (hit !== undefined) {
        clearTimeout(timer);
        list.push = push;
        resolve(hit);
      }
      return n;
    };
  });
}

/** Resolves when the socket has closed (events.once would reject on its 'error' first). */
function closed(s: { on(e: 'close', l: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => s.on('close', () => resolve()));
}

function listenPort(s: Server | NetServer): Promise<number> {
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
}

/**
 * A CONNECT splice (what the gateway's mesh port does): reads one CONNECT head, answers 200,
 * then copies bytes both ways without looking at them. Records what went through.
 */
function splice(targetPort: number): { server: NetServer; authorities: string[]; carried: Buffer[] } {
  const authorities: string[] = [];
  const carried: Buffer[] = [];
  const server = netServer((client) => {
    client.on('error', () => undefined);
    let head = Buffer.alloc(0);
    const onHead = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      client.off('data', onHead);
      client.pause();
      authorities.push(head.subarray(0, end).toString('latin1').split(' ')[1]);
      const rest = head.subarray(end + 4);
      const up = netConnect(targetPort, '127.0.0.1', () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (rest.length > 0) up.write(rest);
        client.on('data', (b: Buffer) => {
          carried.push(b);
          up.write(b);
        });
        up.on('data', (b: Buffer) => {
          carried.push(b);
          client.write(b);
        });
        client.on('end', () => up.end());
        up.on('end', () => client.end());
        client.resume();
      });
      up.on('error', () => client.destroy());
      client.on('close', () => up.destroy());
    };
    client.on('data', onHead);
  });
  return { server, authorities, carried };
}

describe('h1 over mesh mTLS', async () => {
  const root = await generateRootCa({ trustDomain: TD });
  const east = await issueIntermediate(root, { clusterName: 'east' });
  const west = await issueIntermediate(root, { clusterName: 'west' });
  const otherRoot = await generateRootCa({ trustDomain: TD });
  const otherEast = await issueIntermediate(otherRoot, { clusterName: 'east' });
  let serverCreds = await workload(west, PAY);
  let clientCreds = await workload(east, CART);
  let clientContext: SecureContext = mtlsClientContext(clientCreds);
  const meshTls: UpstreamTls = { context: () => clientContext, trustDomain: TD, expectedServerId: PAY };

  let app: Server;
  let inbound: H1Server;
  let front: H1Server;
  let tunnel: ReturnType<typeof splice>;
  let inboundPort = 0;
  let frontPort = 0;
  let tunnelPort = 0;
  const appPools = new UpstreamRegistry();
  const meshPools = new UpstreamRegistry();
  /** Requests the inbound handler got, with the peer it saw. */
  const handled: { url: string; peer: PeerIdentity | undefined; proto: string }[] = [];
  const refusals: Refusal[] = [];
  /** Server-side TLS sockets of the inbound listener (every completed handshake). */
  const secured: TLSSocket[] = [];
  /** The outbound hop's results, by request path. */
  const results = new Map<string, Promise<ForwardResult>>();
  let wrongIdContext: () => SecureContext = () => clientContext;
  const seenRefusals = new Set<Refusal>();

  function upstreamFor(req: InboundRequest): Upstream {
    const tls = req.url.startsWith('/wrong-id/') ? { ...meshTls, expectedServerId: `spiffe://${TD}/ns/billing/sa/ledger` }
      : req.url.startsWith('/as-other/') ? { ...meshTls, context: wrongIdContext }
      : meshTls;
    const target: UpstreamTarget = req.url.startsWith('/tunnel/') || req.url.startsWith('/as-other/tunnel/')
      ? { host: '127.0.0.1', port: tunnelPort, tunnel: { authority: 'payments.billing:8080', headerLines: '' }, tls }
      : { host: '127.0.0.1', port: inboundPort, tls };
    const key = target.tunnel ? `127.0.0.1:${tunnelPort}>payments.billing:8080` : `127.0.0.1:${inboundPort}`;
    return { key: req.url.startsWith('/as-other/') ? `${key}#other` : key, target, label: `inbound ${key}` };
  }

  before(async () => {
    app = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => res.end(JSON.stringify({ url: req.url, method: req.method, body, xfp: req.headers['x-forwarded-proto'] ?? null })));
    });
    const appPort = await listenPort(app);
    inbound = new H1Server({
      tls: { options: mtlsServerOptions(serverCreds), onRefused: (reason, remote) => refusals.push({ reason, remote }) },
      onRequest: (req) => {
        handled.push({ url: req.url, peer: req.peer, proto: req.proto });
        void proxy(req, appPools, { key: `127.0.0.1:${appPort}`, target: { host: '127.0.0.1', port: appPort }, label: 'app' }, { path: req.url });
      },
    });
    inbound.net.on('secureConnection', (s: TLSSocket) => secured.push(s));
    inboundPort = await inbound.listen(0, '127.0.0.1');
    tunnel = splice(inboundPort);
    tunnelPort = await listenPort(tunnel.server);
    front = new H1Server({
      onRequest: (req) => {
        const r = proxy(req, meshPools, upstreamFor(req), { path: req.url });
        results.set(req.url, r);
      },
    });
    frontPort = await front.listen(0, '127.0.0.1');
  });

  after(async () => {
    await front.close(100);
    await meshPools.close(100);
    await inbound.close(100);
    await appPools.close(100);
    tunnel.server.close();
    app.closeAllConnections();
    await new Promise((r) => app.close(r));
    agent.destroy();
  });

  const agent = new Agent({ keepAlive: true, maxSockets: 16 });

  /** A request to the outbound hop over a kept-alive plaintext connection. */
  function call(path: string, body?: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: frontPort, path, method: body === undefined ? 'GET' : 'POST', agent }, (res: IncomingMessage) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('a request and its response go through the mTLS hop; the server sees the caller identity and cluster', async () => {
    const r = await call('/direct/hello', 'payload');
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { url: '/direct/hello', method: 'POST', body: 'payload', xfp: 'http' });
    const h = handled.find((x) => x.url === '/direct/hello')!;
    assert.deepEqual(h.peer, { spiffeId: CART, trustDomain: TD, namespace: 'shop', serviceAccount: 'cart', cluster: 'east' });
    assert.equal(h.proto, 'https');
    assert.equal(secured.at(-1)!.getProtocol(), 'TLSv1.3');
  });

  it('keep-alive: many sequential requests cost one TLS handshake', async () => {
    const handshakesBefore = secured.length;
    const pool = meshPools.peek(`127.0.0.1:${inboundPort}`, { host: '127.0.0.1', port: inboundPort, tls: meshTls })!;
    const poolBefore = pool.handshakes;
    for (let i = 0; i < 50; i++) assert.equal((await call(`/direct/ka-${i}`)).status, 200);
    assert.equal(secured.length - handshakesBefore, 0, 'no new handshake: the pooled TLS connection was reused');
    assert.equal(pool.handshakes, poolBefore);
    assert.equal(pool.size, 1);
  });

  it('a new connection of the pool resumes the TLS session', async () => {
    const pool = meshPools.peek(`127.0.0.1:${inboundPort}`, { host: '127.0.0.1', port: inboundPort, tls: meshTls })!;
    // The server ends its side of the pooled connections (as its keep-alive timeout would).
    const gone = secured.filter((s) => !s.destroyed).map((s) => once(s, 'close'));
    for (const s of secured) s.destroy();
    await Promise.all(gone);
    const n = secured.length;
    assert.equal((await call('/direct/after-close')).status, 200);
    assert.equal(secured.length, n + 1, 'one new connection');
    assert.equal(secured[n].isSessionReused(), true, 'it resumed the session of the first connection');
    assert.equal(handled.at(-1)!.peer?.cluster, 'east', 'the identity is known on a resumed session too');
    assert.ok(pool.size >= 1);
  });

  it('through a CONNECT splice: TLS runs inside the tunnel, the splice carries only ciphertext', async () => {
    const before = tunnel.carried.length;
    for (let i = 0; i < 3; i++) {
      const r = await call(`/tunnel/secret-path-${i}`, 'secret-body');
      assert.equal(r.status, 200, r.body);
      assert.equal(JSON.parse(r.body).body, 'secret-body');
    }
    assert.deepEqual(tunnel.authorities, ['payments.billing:8080'], 'one tunnel for all three (kept alive)');
    const bytes = Buffer.concat(tunnel.carried.slice(before)).toString('latin1');
    assert.ok(bytes.length > 0);
    assert.ok(!bytes.includes('secret-path') && !bytes.includes('secret-body') && !bytes.includes('HTTP/1.1'), 'no plaintext HTTP inside the tunnel');
    assert.equal(bytes.charCodeAt(0), 0x16, 'the first tunnel bytes are a TLS handshake record');
    assert.equal(handled.at(-1)!.peer?.spiffeId, CART);
  });

  it('a server that is not the expected identity fails the handshake: 502, failed before send, nothing reaches it', async () => {
    const n = handled.length;
    const r = await call('/wrong-id/x');
    assert.equal(r.status, 502);
    const j = JSON.parse(r.body);
    assert.equal(j.errorCode, 'CM_ERR_BAD_GATEWAY');
    assert.match(j.message, /server is spiffe:\/\/crossmesh\.local\/ns\/billing\/sa\/payments, expected .*ledger.*failed before any byte was sent/);
    const res = await results.get('/wrong-id/x')!;
    assert.equal(res.failedBeforeSend, true);
    assert.equal((res.error!.cause as CrossmeshError).code, 'CM_ERR_CERT_INVALID');
    assert.equal(handled.length, n);
  });

  it('a client certificate the server refuses (expired) is a failed-before-send error on the client and a refusal on the server', async () => {
    const expired = await workload(east, CART, new Date(Date.now() - 48 * 3_600_000));
    const expiredContext = mtlsClientContext(expired);
    wrongIdContext = () => expiredContext;
    const n = handled.length;
    const refusal = waitFor(refusals, (x) => /expired/.test(x.reason.message), 'expiry refusal');
    const r = await call('/as-other/expired');
    seenRefusals.add(await refusal);
    assert.equal(r.status, 502, r.body);
    assert.match(JSON.parse(r.body).message, /refused this proxy's client certificate/);
    const res = await results.get('/as-other/expired')!;
    assert.equal(res.failedBeforeSend, true);
    assert.equal((res.error!.cause as CrossmeshError).code, 'CM_ERR_CERT_INVALID');
    const seen = await refusal;
    assert.equal(seen.reason.code, 'CM_ERR_CERT_INVALID');
    assert.match(seen.reason.message, /has expired \(CERT_HAS_EXPIRED\)/);
    assert.match(seen.remote, /^127\.0\.0\.1:\d+$/);
    assert.equal(handled.length, n, 'nothing reached the handler');
  });

  it('the same refusal through the tunnel (TLS inside it) is failed-before-send too', async () => {
    const n = handled.length;
    const refusal = waitFor(refusals, (x) => /expired/.test(x.reason.message) && !seenRefusals.has(x), 'expiry refusal through the tunnel');
    const r = await call('/as-other/tunnel/expired');
    assert.equal(r.status, 502, r.body);
    const res = await results.get('/as-other/tunnel/expired')!;
    assert.equal(res.failedBeforeSend, true, res.error?.message);
    assert.match(res.error!.message, /refused this proxy's client certificate/);
    await refusal;
    assert.equal(handled.length, n);
  });

  it('pools of a TLS and a plaintext target never share a key, and retain() closes both', () => {
    const registry = new UpstreamRegistry();
    const plain = registry.get('10.0.0.1:80', { host: '10.0.0.1', port: 80 }, 'plain');
    const tls = registry.get('10.0.0.1:80', { host: '10.0.0.1', port: 80, tls: meshTls }, 'tls');
    const other = registry.get('10.0.0.1:80', { host: '10.0.0.1', port: 80, tls: { ...meshTls, expectedServerId: CART } }, 'tls as cart');
    assert.notEqual(plain, tls);
    assert.notEqual(tls, other);
    assert.equal(registry.get('10.0.0.1:80', { host: '10.0.0.1', port: 80, tls: meshTls }, 'tls'), tls);
    assert.equal(registry.size, 3);
    registry.retain(new Set());
    assert.equal(registry.size, 0);
  });

  describe('refusals at the inbound listener (reported, nothing reaches the handler)', () => {
    async function refusedDial(creds: WorkloadCredentials, why: RegExp): Promise<Refusal> {
      const n = handled.length;
      const refusal = waitFor(refusals, (x) => why.test(x.reason.message), String(why));
      const s = tlsConnect({ ...mtlsClientOptions(creds), host: '127.0.0.1', port: inboundPort });
      s.on('error', () => undefined);
      s.on('secureConnect', () => s.write('GET /must-not-arrive HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.resume();
      await closed(s);
      const r = await refusal;
      assert.equal(handled.length, n);
      return r;
    }

    it('a client certificate from another root', async () => {
      const intruder = { ...(await workload(otherEast, CART)), roots: [root.rootPem] };
      const r = await refusedDial(intruder, /not from this mesh's roots/);
      assert.equal(r.reason.code, 'CM_ERR_CERT_INVALID');
    });

    it('an expired client certificate', async () => {
      const r = await refusedDial(await workload(east, CART, new Date(Date.now() - 48 * 3_600_000)), /expired/);
      assert.equal(r.reason.code, 'CM_ERR_CERT_INVALID');
    });

    it('no client certificate', async () => {
      const n = handled.length;
      const refusal = waitFor(refusals, (x) => /no certificate|sent no certificate|certificate required/.test(x.reason.message), 'no-certificate refusal');
      const s = tlsConnect({ host: '127.0.0.1', port: inboundPort, ca: [root.rootPem], minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
      s.on('error', () => undefined);
      s.resume();
      await closed(s);
      assert.equal((await refusal).reason.code, 'CM_ERR_CERT_INVALID');
      assert.equal(handled.length, n);
    });

    it('a plaintext request to the TLS port', async () => {
      const n = handled.length;
      const refusal = waitFor(refusals, (x) => /plaintext HTTP request/.test(x.reason.message), 'plaintext refusal');
      const s = netConnect(inboundPort, '127.0.0.1');
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString('latin1')));
      s.on('error', () => undefined);
      s.write('GET /plain HTTP/1.1\r\nHost: x\r\n\r\n');
      await closed(s);
      assert.equal((await refusal).reason.code, 'CM_ERR_UNAVAILABLE');
      assert.ok(!got.includes('HTTP/1.1 200'));
      assert.equal(handled.length, n);
    });

    it('a handshake stalled halfway (slowloris) is cut at the handshake timeout', async () => {
      const stalledRefusals: Refusal[] = [];
      const slow = new H1Server({
        tls: { options: mtlsServerOptions(serverCreds), handshakeTimeoutMs: 300, onRefused: (reason, remote) => stalledRefusals.push({ reason, remote }) },
        onRequest: () => assert.fail('no request on a stalled handshake'),
      });
      const port = await slow.listen(0, '127.0.0.1');
      try {
        const s = netConnect(port, '127.0.0.1');
        s.on('error', () => undefined);
        // A TLS handshake record header announcing 512 bytes, then 4 of them, then nothing.
        s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]));
        const t0 = performance.now();
        await closed(s);
        const waited = performance.now() - t0;
        const r = await waitFor(stalledRefusals, () => true, 'timeout refusal');
        assert.equal(r.reason.code, 'CM_ERR_TIMEOUT');
        assert.match(r.reason.message, /did not complete in time/);
        assert.match(r.remote, /^127\.0\.0\.1:\d+$/);
        assert.ok(waited >= 250, `closed after ${waited} ms, before the timeout`);
        assert.equal(slow.connections, 0);
      } finally {
        await slow.close(100);
      }
    });

    it('close() does not wait for handshakes in progress', async () => {
      const slow = new H1Server({ tls: { options: mtlsServerOptions(serverCreds) }, onRequest: () => undefined });
      const port = await slow.listen(0, '127.0.0.1');
      const s = netConnect(port, '127.0.0.1');
      s.on('error', () => undefined);
      await once(s, 'connect');
      s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]));
      const t0 = performance.now();
      await Promise.all([slow.close(100), closed(s)]);
      assert.ok(performance.now() - t0 < 2000);
    });
  });

  it('rotation under keep-alive load: 0 failed requests, new connections present the new certificates', async () => {
    let stop = false;
    const failures: string[] = [];
    let done = 0;
    const worker = async (id: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        try {
          const r = await call(`/direct/load-${id}-${i}`);
          if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
        } catch (err) {
          failures.push(String(err));
        }
        done++;
      }
    };
    const until = (n: number): Promise<void> => new Promise((resolve) => {
      const check = (): void => void (done >= n ? resolve() : setImmediate(check));
      check();
    });
    const firstSecured = secured.length;
    const workers = [0, 1, 2, 3].map(worker);
    await until(200);
    // Rotate both sides mid-load: the server's certificate, and the client credentials new
    // pool connections use.
    const oldServerSerial = secured.at(-1)!.getCertificate() as { serialNumber: string };
    serverCreds = await workload(west, PAY);
    clientCreds = await workload(east, CART);
    inbound.setSecureContext(mtlsServerOptions(serverCreds));
    clientContext = mtlsClientContext(clientCreds);
    const rotatedAt = secured.length;
    // More concurrency than the pool has connections: new ones are opened under load.
    const more = [4, 5, 6, 7].map(worker);
    await until(done + 400);
    stop = true;
    await Promise.all([...workers, ...more]);
    assert.deepEqual(failures, []);
    const fresh = secured.slice(rotatedAt);
    assert.ok(fresh.length > 0, 'new connections were opened after the rotation');
    const newServerSerial = new (await import('node:crypto')).X509Certificate(serverCreds.chainPem).serialNumber;
    const newClientSerial = new (await import('node:crypto')).X509Certificate(clientCreds.chainPem).serialNumber;
    // A session is resumed only under the context it was obtained with: any resumed one here
    // was obtained after the rotation, so it carries the new client certificate too.
    for (const s of fresh) {
      assert.equal((s.getCertificate() as { serialNumber: string }).serialNumber, newServerSerial, 'the server presents its new certificate');
      assert.equal(s.getPeerCertificate().serialNumber, newClientSerial, 'the client presents its new certificate');
    }
    assert.equal(fresh[0].isSessionReused(), false, 'the first connection after the rotation resumes no session of the old credentials');
    assert.notEqual(oldServerSerial.serialNumber, newServerSerial);
    assert.ok(secured.length > firstSecured);
  });
});

/**
 * The unconsume-before-pause fix (chaos scenario 7) on a TLS listener: a paused connection
 * still notices its client going away, so the upstream exchange is aborted at once.
 */
describe('h1 mTLS listener: a client that goes away while its answer is pending', async () => {
  const root = await generateRootCa({ trustDomain: TD });
  const east = await issueIntermediate(root, { clusterName: 'east' });
  const serverCreds = await workload(east, PAY);
  const clientCreds = await workload(east, CART);
  let app: Server;
  let hop: H1Server;
  let port = 0;
  const registry = new UpstreamRegistry();
  let arrived: (req: IncomingMessage) => void = () => undefined;

  before(async () => {
    app = createServer((req) => { req.on('error', () => undefined); arrived(req); /* never answers */ });
    const appPort = await listenPort(app);
    hop = new H1Server({
      tls: { options: mtlsServerOptions(serverCreds) },
      onRequest: (req) => void proxy(req, registry, { key: `127.0.0.1:${appPort}`, target: { host: '127.0.0.1', port: appPort }, label: 'hanging app' }, { path: req.url }),
    });
    port = await hop.listen(0, '127.0.0.1');
  });
  after(async () => {
    await hop.close(100);
    await registry.close(100);
    app.closeAllConnections();
    await new Promise((r) => app.close(r));
  });

  async function abandon(requestBytes: string, leave: 'end' | 'reset'): Promise<void> {
    const reached = new Promise<IncomingMessage>((r) => { arrived = r; });
    // TLS over a TCP socket of our own, so the test can reset the TCP connection.
    const tcp = netConnect(port, '127.0.0.1');
    tcp.on('error', () => undefined);
    await once(tcp, 'connect');
    const s: TLSSocket = tlsConnect({ ...mtlsClientOptions(clientCreds), socket: tcp });
    s.on('error', () => undefined);
    await once(s, 'secureConnect');
    s.write(requestBytes);
    const upstreamReq = await reached;
    assert.equal(hop.connections, 1);
    const upstreamClosed = new Promise<void>((r) => upstreamReq.once('close', () => r()));
    if (leave === 'end') s.end();
    else tcp.resetAndDestroy();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise((r) => { timer = setTimeout(r, 3000, 'still open'); });
    const first = await Promise.race([upstreamClosed.then(() => 'closed'), deadline]);
    clearTimeout(timer);
    assert.equal(first, 'closed', 'the upstream request was not aborted within 3 s of the client leaving');
    assert.equal(hop.connections, 0);
  }

  it('Connection: close request, client closes (FIN)', () => abandon('GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'end'));
  it('Connection: close request, client resets', () => abandon('GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'reset'));
  it('a pipelined request waiting behind the pending one, client closes', () => abandon('GET /d HTTP/1.1\r\nHost: x\r\n\r\nGET /e HTTP/1.1\r\nHost: x\r\n\r\n', 'end'));
  it('kept-alive request, client closes', () => abandon('GET /f HTTP/1.1\r\nHost: x\r\n\r\n', 'end'));
});
