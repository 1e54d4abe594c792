/**
 * Real TLS 1.3 over loopback (port 0), no mocks: the mesh's mTLS (mesh-tls.ts) between
 * workloads of two clusters, and what it refuses.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { CrossmeshError } from '../errors.js';
import { generateRootCa, issueIntermediate, issueWorkloadCert, type CertificateAuthority } from './ca.js';
import { createWorkloadCsr } from './csr.js';
import { clusterOfCaName, mtlsClientOptions, mtlsServerOptions, peerIdentity, sanEntries, tlsError, trustDomainOf, type PeerIdentity, type WorkloadCredentials } from './mesh-tls.js';
import { verifyPeerChain } from './verify.js';
import { EC_P256, generateKeyPair, privateKeyToPem, x509 } from './x509.js';

const TD = 'crossmesh.local';
const CART = `spiffe://${TD}/ns/shop/sa/cart`;
const PAY = `spiffe://${TD}/ns/billing/sa/payments`;

async function workload(ca: CertificateAuthority, spiffeId: string, now?: Date): Promise<WorkloadCredentials> {
  const { keyPem, csrPem } = await createWorkloadCsr(spiffeId);
  const issued = await issueWorkloadCert(ca, { csrPem, spiffeId, now });
  return { keyPem, chainPem: issued.chainPem, roots: [ca.rootPem] };
}

/** A client-capable leaf with whatever SANs (no URI, or invalid ones), signed by `ca` directly through the library. */
async function craftedLeaf(ca: CertificateAuthority, uris: string[], dns: string[] = []): Promise<WorkloadCredentials> {
  const keys = await generateKeyPair();
  const leaf = await x509.X509CertificateGenerator.create({
    subject: 'O=crossmesh',
    issuer: ca.cert.subjectName,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      ...(uris.length + dns.length > 0
        ? [new x509.SubjectAlternativeNameExtension([...dns.map((value) => ({ type: 'dns' as const, value })), ...uris.map((value) => ({ type: 'url' as const, value }))])]
        : []),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
    ],
  });
  return { keyPem: await privateKeyToPem(keys.privateKey), chainPem: [leaf.toString('pem'), ...ca.chainPems].join('\n'), roots: [ca.rootPem] };
}

interface MeshServer {
  port: number;
  server: Server;
  /** Peers the server accepted. */
  accepted: PeerIdentity[];
  /** Why the server refused connections: handshake errors and our post-handshake refusals. */
  refusals: Error[];
  /** The first refusal (already seen or still to come) whose message matches; fails after 5 s. */
  nextRefusal(match: RegExp): Promise<Error>;
}

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** A TLS echo-of-identity server: replies `you are <peer id>` to a verified peer, destroys the rest. */
async function meshServer(creds: WorkloadCredentials): Promise<MeshServer> {
  const accepted: PeerIdentity[] = [];
  const refusals: Error[] = [];
  const waiters: { match: RegExp; resolve: (e: Error) => void }[] = [];
  const refuse = (e: Error) => {
    // A client that gives up itself (the identity-mismatch test) leaves the server a late
    // "socket hang up"; that is no refusal of the server's, so it is not queued.
    if (/socket hang up|ECONNRESET/.test(e.message)) return;
    const w = waiters.findIndex((x) => x.match.test(e.message));
    if (w === -1) refusals.push(e);
    else waiters.splice(w, 1)[0].resolve(e);
  };
  const server = createServer(mtlsServerOptions(creds), (socket: TLSSocket) => {
    try {
      const peer = peerIdentity(socket, trustDomainOf(creds));
      accepted.push(peer);
      socket.end(`you are ${peer.spiffeId} of ${peer.cluster}`);
    } catch (err) {
      refuse(err as Error);
      socket.destroy();
    }
  });
  server.on('tlsClientError', (err, socket) => refuse(tlsError(err, socket)));
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    server,
    accepted,
    refusals,
    nextRefusal: (match) => {
      const i = refusals.findIndex((e) => match.test(e.message));
      if (i !== -1) return Promise.resolve(refusals.splice(i, 1)[0]);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no refusal matching ${match} in 5 s; seen: ${refusals.map((e) => e.message).join(' | ')}`)), 5000);
        waiters.push({ match, resolve: (e) => (clearTimeout(timer), resolve(e)) });
      });
    },
  };
}

/** Connects, and resolves with what the client saw: the server's ID and the reply, or the error. */
async function dial(port: number, creds: WorkloadCredentials, opts: { expectedServerId?: string } = {}): Promise<{ serverId?: string; reply?: string; protocol?: string | null; error?: Error }> {
  return new Promise((resolve) => {
    const socket = connect({ ...mtlsClientOptions(creds, opts), host: '127.0.0.1', port });
    let serverId: string | undefined;
    let protocol: string | null | undefined;
    let reply = '';
    socket.on('secureConnect', () => {
      serverId = (socket.getPeerCertificate().subjectaltname ?? '').replace(/^URI:/, '');
      protocol = socket.getProtocol();
    });
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (reply += d));
    socket.on('error', (error) => resolve({ serverId, error }));
    socket.on('close', () => resolve({ serverId, reply, protocol }));
  });
}

describe('mesh mTLS (TLS 1.3 over loopback)', async () => {
  const root = await generateRootCa({ trustDomain: TD });
  const east = await issueIntermediate(root, { clusterName: 'east' });
  const west = await issueIntermediate(root, { clusterName: 'west' });
  const cartEast = await workload(east, CART);
  const payWest = await workload(west, PAY);
  const server = await meshServer(payWest);

  it('two workloads under two intermediates of one root: handshake succeeds, each sees the other', async () => {
    const r = await dial(server.port, cartEast, { expectedServerId: PAY });
    assert.equal(r.error, undefined);
    assert.equal(r.protocol, 'TLSv1.3');
    assert.equal(r.serverId, PAY);
    assert.equal(r.reply, `you are ${CART} of east`);
    assert.deepEqual(server.accepted.at(-1), { spiffeId: CART, trustDomain: TD, namespace: 'shop', serviceAccount: 'cart', cluster: 'east' });
  });

  it('the client refuses a server that is not the expected identity', async () => {
    const r = await dial(server.port, cartEast, { expectedServerId: `spiffe://${TD}/ns/billing/sa/ledger` });
    assert.ok(r.error instanceof CrossmeshError && r.error.code === 'CM_ERR_CERT_INVALID', String(r.error));
    assert.match(r.error.message, /server is spiffe:\/\/crossmesh\.local\/ns\/billing\/sa\/payments, expected .*ledger/);
  });

  it('refuses a client certificate from another root', async () => {
    const otherRoot = await generateRootCa({ trustDomain: TD });
    const otherEast = await issueIntermediate(otherRoot, { clusterName: 'east' });
    // It trusts our root (so it would accept the server) but presents a chain to its own.
    const intruder = { ...(await workload(otherEast, CART)), roots: [root.rootPem] };
    const refusal = server.nextRefusal(/not from this mesh's root|another root/);
    const r = await dial(server.port, intruder);
    const e = await refusal;
    assert.ok(e instanceof CrossmeshError && e.code === 'CM_ERR_CERT_INVALID', String(e));
    assert.match(e.message, /not from this mesh's roots|another root/);
    assert.equal(r.reply ?? '', '');
  });

  it('the client refuses a server from another root', async () => {
    const otherRoot = await generateRootCa({ trustDomain: TD });
    const other = await meshServer(await workload(await issueIntermediate(otherRoot, { clusterName: 'x' }), PAY));
    const r = await dial(other.port, cartEast);
    assert.ok(r.error, 'expected a handshake error');
    const e = tlsError(r.error);
    assert.equal(e.code, 'CM_ERR_CERT_INVALID', e.message);
  });

  it('refuses an expired client certificate, saying so', async () => {
    const expired = await workload(east, CART, new Date(Date.now() - 48 * 3_600_000));
    const refusal = server.nextRefusal(/expired/);
    const r = await dial(server.port, expired);
    const e = await refusal;
    assert.ok(e instanceof CrossmeshError && e.code === 'CM_ERR_CERT_INVALID', String(e));
    assert.match(e.message, /expired \(CERT_HAS_EXPIRED\)/);
    assert.equal(r.reply ?? '', '');
  });

  it('refuses a client certificate without a SPIFFE ID, or with an invalid one', async () => {
    for (const [uris, why] of [
      [[], /no SPIFFE ID/],
      [[`spiffe://${TD}/ns/Shop/sa/cart`], /invalid SPIFFE ID/],
      [[`spiffe://${TD}/ns/shop/sa/../cart`], /invalid SPIFFE ID/],
      [[CART, PAY], /2 URI subjectAltNames/],
      [['spiffe://other.mesh/ns/shop/sa/cart'], /trust domain "other\.mesh"/],
    ] as const) {
      const creds = await craftedLeaf(east, [...uris]);
      const refusal = server.nextRefusal(why);
      const r = await dial(server.port, creds);
      const e = await refusal;
      assert.ok(e instanceof CrossmeshError && e.code === 'CM_ERR_CERT_INVALID', String(e));
      assert.match(e.message, why);
      assert.equal(r.reply ?? '', '');
    }
  });

  it('the client refuses a server certificate without a SPIFFE ID', async () => {
    const bare = await meshServer(await craftedLeaf(west, []));
    const r = await dial(bare.port, cartEast);
    assert.ok(r.error instanceof CrossmeshError && r.error.code === 'CM_ERR_CERT_INVALID', String(r.error));
    assert.match(r.error.message, /no SPIFFE ID/);
  });

  it('refuses plaintext bytes to the TLS port and closes the connection', async () => {
    const refusal = server.nextRefusal(/plaintext HTTP request to a TLS port/);
    const socket = netConnect(server.port, '127.0.0.1');
    let got = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
    socket.on('error', () => {});
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => socket.on('close', r));
    const e = await refusal;
    assert.equal(e instanceof CrossmeshError && e.code, 'CM_ERR_UNAVAILABLE', String(e));
    assert.ok(!got.toString('latin1').includes('you are'), 'no application data to a plaintext client');
  });

  it('a client without a certificate is refused', async () => {
    const refusal = server.nextRefusal(/sent no certificate/);
    const socket = connect({ host: '127.0.0.1', port: server.port, ca: [root.rootPem], minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
    socket.on('error', () => {});
    socket.resume();
    await new Promise((r) => socket.on('close', r));
    const e = await refusal;
    assert.ok(e instanceof CrossmeshError && e.code === 'CM_ERR_CERT_INVALID', String(e));
  });
});

describe('mesh identity from node:tls (no @peculiar/x509 on the data path)', async () => {
  const rootA = await generateRootCa({ trustDomain: TD });
  const rootB = await generateRootCa({ trustDomain: TD });
  const east = await issueIntermediate(rootA, { clusterName: 'east' });
  const west = await issueIntermediate(rootB, { clusterName: 'west-2.prod' });
  const bundle = [rootA.rootPem, rootB.rootPem];
  const withBundle = (c: WorkloadCredentials): WorkloadCredentials => ({ ...c, roots: bundle, trustDomain: TD });

  it('a trust bundle of two roots: workloads of both are accepted, each with its cluster', async () => {
    const server = await meshServer(withBundle(await workload(east, PAY)));
    const fromWest = await dial(server.port, withBundle(await workload(west, CART)), { expectedServerId: PAY });
    assert.equal(fromWest.error, undefined);
    assert.equal(fromWest.reply, `you are ${CART} of west-2.prod`);
    const fromEast = await dial(server.port, withBundle(await workload(east, CART)));
    assert.equal(fromEast.reply, `you are ${CART} of east`);
  });

  it('the trust domain is read from the first root when the credentials do not name it', () => {
    assert.equal(trustDomainOf({ keyPem: '', chainPem: '', roots: [rootA.rootPem] }), TD);
    assert.equal(trustDomainOf({ keyPem: '', chainPem: '', roots: [rootA.rootPem], trustDomain: 'given.example' }), 'given.example');
  });

  it("the cluster name is parsed from issueIntermediate's subject CN", () => {
    assert.equal(clusterOfCaName(west.cert.subjectName.getField('CN')[0]), 'west-2.prod');
    assert.equal(clusterOfCaName('crossmesh root CA crossmesh.local'), undefined);
    assert.equal(clusterOfCaName('crossmesh cluster Evil CA'), undefined);
  });

  it("node's subjectaltname quoting is honoured: a DNS name holding \", URI:...\" is no second SAN", async () => {
    assert.deepEqual(sanEntries('URI:spiffe://a/ns/b/sa/c'), [{ type: 'URI', value: 'spiffe://a/ns/b/sa/c' }]);
    assert.deepEqual(sanEntries('DNS:"x, URI:spiffe://a/ns/b/sa/admin", URI:spiffe://a/ns/b/sa/c'), [
      { type: 'DNS', value: 'x, URI:spiffe://a/ns/b/sa/admin' },
      { type: 'URI', value: 'spiffe://a/ns/b/sa/c' },
    ]);
    assert.equal(sanEntries('DNS:"unterminated'), undefined);
    assert.equal(sanEntries('no separator'), undefined);
    const server = await meshServer(await workload(east, PAY));
    const forged = `x, URI:spiffe://${TD}/ns/kube-system/sa/admin`;
    // Only the forged-looking DNS name: no URI SAN at all.
    const refusal = server.nextRefusal(/no SPIFFE ID \(no URI subjectAltName\)/);
    await dial(server.port, await craftedLeaf(east, [], [forged]));
    await refusal;
    // The forged-looking DNS name and a real URI SAN: the real one is the identity.
    const r = await dial(server.port, await craftedLeaf(east, [CART], [forged]));
    assert.equal(r.reply, `you are ${CART} of east`);
  });

  it('refuses a leaf that no crossmesh cluster CA issued (signed by the root directly)', async () => {
    const server = await meshServer(await workload(east, PAY));
    const refusal = server.nextRefusal(/not by a crossmesh cluster CA/);
    const r = await dial(server.port, await craftedLeaf(rootA, [CART]));
    const e = await refusal;
    assert.ok(e instanceof CrossmeshError && e.code === 'CM_ERR_CERT_INVALID', String(e));
    assert.match(e.message, /issued by "crossmesh root CA crossmesh\.local"/);
    assert.equal(r.reply ?? '', '');
  });

  it('a resumed session (no chain on the server) still yields the identity and cluster; an expired leaf on one is refused', async () => {
    const serverCreds = await workload(east, PAY);
    const client = await workload(west, CART);
    const seen: { reused: boolean; peer?: PeerIdentity; error?: Error }[] = [];
    let checkAt: number | undefined;
    const server = createServer(mtlsServerOptions(withBundle(serverCreds)), (socket: TLSSocket) => {
      try {
        const peer = peerIdentity(socket, TD, checkAt);
        seen.push({ reused: socket.isSessionReused(), peer });
      } catch (error) {
        seen.push({ reused: socket.isSessionReused(), error: error as Error });
      }
      socket.end('ok');
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const once_ = (session?: Buffer): Promise<Buffer | undefined> =>
      new Promise((resolve, reject) => {
        let ticket: Buffer | undefined;
        const s = connect({ ...mtlsClientOptions(withBundle(client)), host: '127.0.0.1', port, session });
        s.on('session', (t: Buffer) => (ticket = t));
        s.on('error', reject);
        s.resume();
        s.on('close', () => resolve(ticket));
      });
    const ticket = await once_();
    assert.ok(ticket, 'the server issued a session ticket');
    await once_(ticket);
    checkAt = Date.now() + 48 * 3_600_000;
    await once_(ticket);
    assert.equal(seen.length, 3);
    assert.deepEqual(seen.map((x) => x.reused), [false, true, true]);
    assert.deepEqual(seen[1].peer, { spiffeId: CART, trustDomain: TD, namespace: 'shop', serviceAccount: 'cart', cluster: 'west-2.prod' });
    assert.ok(seen[2].error instanceof CrossmeshError && seen[2].error.code === 'CM_ERR_CERT_INVALID');
    assert.match(seen[2].error.message, /expired at .* \(on a resumed TLS session\)/);
  });

  it('verifyPeerChain (the non-handshake check) takes the same trust bundle and reports the cluster', async () => {
    const leaf = await workload(west, CART);
    const chain = leaf.chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)!;
    const peer = verifyPeerChain(chain, bundle);
    assert.equal(peer.spiffeId, CART);
    assert.equal(peer.cluster, 'west-2.prod');
    const third = await generateRootCa({ trustDomain: TD });
    assert.throws(() => verifyPeerChain(chain, [rootA.rootPem, third.rootPem]), (e: unknown) => e instanceof CrossmeshError && e.code === 'CM_ERR_CERT_INVALID' && /not issued by this mesh's roots/.test(e.message));
  });

  it('tlsError names a stalled handshake and plaintext in words', () => {
    const timeout = tlsError(Object.assign(new Error('TLS handshake timeout'), { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' }));
    assert.equal(timeout.code, 'CM_ERR_TIMEOUT');
    assert.match(timeout.message, /did not complete in time/);
    const plain = tlsError(Object.assign(new Error('ssl3_get_record:http request'), { code: 'ERR_SSL_HTTP_REQUEST' }));
    assert.equal(plain.code, 'CM_ERR_UNAVAILABLE');
    assert.match(plain.message, /plaintext HTTP request to a TLS port/);
  });
});
