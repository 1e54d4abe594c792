/**
 * Real TLS 1.3 over loopback (port 0), no mocks: the mesh's mTLS between workloads of two
 * clusters, and what it refuses.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { CrossmeshError } from '../errors.js';
import { generateRootCa, issueIntermediate, issueWorkloadCert, type CertificateAuthority } from './ca.js';
import { createWorkloadCsr } from './csr.js';
import { mtlsClientOptions, mtlsServerOptions, peerSpiffeId, tlsError, type WorkloadCredentials } from './tls.js';
import { EC_P256, generateKeyPair, privateKeyToPem, x509 } from './x509.js';

const TD = 'crossmesh.local';
const CART = `spiffe://${TD}/ns/shop/sa/cart`;
const PAY = `spiffe://${TD}/ns/billing/sa/payments`;

async function workload(ca: CertificateAuthority, spiffeId: string, now?: Date): Promise<WorkloadCredentials> {
  const { keyPem, csrPem } = await createWorkloadCsr(spiffeId);
  const issued = await issueWorkloadCert(ca, { csrPem, spiffeId, now });
  return { keyPem, chainPem: issued.chainPem, rootPem: ca.rootPem };
}

/** A client-capable leaf with whatever URI SANs (none, or invalid ones), signed by `ca` directly through the library. */
async function craftedLeaf(ca: CertificateAuthority, uris: string[]): Promise<WorkloadCredentials> {
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
      ...(uris.length > 0 ? [new x509.SubjectAlternativeNameExtension(uris.map((value) => ({ type: 'url' as const, value })))] : []),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
    ],
  });
  return { keyPem: await privateKeyToPem(keys.privateKey), chainPem: [leaf.toString('pem'), ...ca.chainPems].join('\n'), rootPem: ca.rootPem };
}

interface MeshServer {
  port: number;
  server: Server;
  /** Peer IDs the server accepted. */
  accepted: string[];
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
  const accepted: string[] = [];
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
      const id = peerSpiffeId(socket, creds.rootPem);
      accepted.push(id);
      socket.end(`you are ${id}`);
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
      serverId = peerSpiffeId(socket, creds.rootPem);
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
    assert.equal(r.reply, `you are ${CART}`);
    assert.ok(server.accepted.includes(CART));
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
    const intruder = { ...(await workload(otherEast, CART)), rootPem: root.rootPem };
    const refusal = server.nextRefusal(/not from this mesh's root|another root/);
    const r = await dial(server.port, intruder);
    const e = await refusal;
    assert.ok(e instanceof CrossmeshError && e.code === 'CM_ERR_CERT_INVALID', String(e));
    assert.match(e.message, /not from this mesh's root|another root/);
    assert.notEqual(r.reply, `you are ${CART}`);
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
    assert.notEqual(r.reply, `you are ${CART}`);
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
    const refusal = server.nextRefusal(/TLS connection failed/);
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
    const socket = connect({ host: '127.0.0.1', port: server.port, ca: root.rootPem, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
    socket.on('error', () => {});
    socket.resume();
    await new Promise((r) => socket.on('close', r));
    const e = await refusal;
    assert.ok(e instanceof CrossmeshError && e.code === 'CM_ERR_CERT_INVALID', String(e));
  });
});
