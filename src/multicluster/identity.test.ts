import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { statusFromError } from '../api/wire.js';
import { ApiClient } from '../client/api-client.js';
import { CrossmeshError } from '../errors.js';
import { INTERMEDIATE_CSR_PATH, INTERMEDIATE_PATH, type IntermediateInfo } from '../identity/api.js';
import { ClusterPki } from '../identity/cluster-pki.js';
import { createWorkloadCsr } from '../identity/csr.js';
import { verifyPeerChain } from '../identity/verify.js';
import { readBody } from '../util/http.js';
import { ensureMeshIdentity, memberIdentityApi, MeshIdentitySync, type MemberIdentityApi, type MeshIdentityState } from './identity.js';

const KEY = 'default/default/default/member-1';
const CART = 'spiffe://crossmesh.local/ns/shop/sa/cart';

/** The member's identity endpoints, in process, over its ClusterPki; counts the calls. */
function directApi(pki: ClusterPki) {
  const calls = { info: 0, csr: 0, install: 0 };
  const api: MemberIdentityApi & { calls: typeof calls; failNext: CrossmeshError[]; infoOverride?: (i: IntermediateInfo) => IntermediateInfo } = {
    calls,
    failNext: [],
    async info() {
      calls.info++;
      const f = api.failNext.shift();
      if (f) throw f;
      const i = pki.intermediateInfo();
      return api.infoOverride ? api.infoOverride(i) : i;
    },
    async csr(td) {
      calls.csr++;
      return pki.createIntermediateCsr(td);
    },
    async install(chain) {
      calls.install++;
      return pki.installIntermediate(chain);
    },
  };
  return api;
}

async function workloadChain(pki: ClusterPki, spiffeId = CART): Promise<string[]> {
  const { csrPem } = await createWorkloadCsr(spiffeId);
  return (await pki.issueWorkload(csrPem, spiffeId)).certificateChain;
}

describe('member mesh identity (control plane side)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'crossmesh-mc-identity-'));
  const opened: ClusterPki[] = [];
  const open = async (dir: string | null, opts: Parameters<typeof ClusterPki.open>[1]) => {
    const p = await ClusterPki.open(dir, opts);
    opened.push(p);
    return p;
  };
  after(() => {
    for (const p of opened) p.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('issues a member its mesh CA from the control plane root; its workload certificates verify against that root', async () => {
    const cp = await open(null, { clusterName: 'control-plane' });
    const member = await open(null, { clusterName: 'member-1' });
    const before = await workloadChain(member);
    assert.throws(() => verifyPeerChain(before, cp.rootPem), /CM_ERR_CERT_INVALID|root/i, 'a member that has not joined is not trusted by the mesh root');
    const api = directApi(member);
    const r = await ensureMeshIdentity(api, cp, 'member-1', KEY);
    assert.equal(r.installed, true);
    assert.equal(r.state.ok, true, r.state.message);
    assert.equal(r.state.reason, 'Issued');
    const info = member.intermediateInfo();
    assert.equal(info.rootFingerprint, cp.rootFingerprint);
    assert.equal(info.joined, true);
    assert.equal(info.rotationDue, false);
    assert.match(info.subject, /crossmesh cluster member-1 CA/);
    assert.match(r.state.message, /^Cluster default\/default\/default\/member-1: mesh CA ".*member-1 CA.*" issued by ".*" \(mesh root [0-9A-F:]+\), valid until \d{4}-/);
    const peer = verifyPeerChain(await workloadChain(member), cp.rootPem);
    assert.equal(peer.spiffeId, CART);
    assert.equal(peer.cluster, 'member-1');
    assert.deepEqual(api.calls, { info: 1, csr: 1, install: 1 });

    // Again: a mesh CA from this root that is not due is left alone.
    const again = await ensureMeshIdentity(api, cp, 'member-1', KEY);
    assert.equal(again.installed, false);
    assert.equal(again.state.message, r.state.message, 'the same condition text, so nothing is rewritten');
    assert.deepEqual(api.calls, { info: 2, csr: 1, install: 1 });
  });

  it('a restarted control plane (same root, from its pki dir) re-issues nothing', async () => {
    const dir = join(tmp, 'cp-pki');
    const cp1 = await open(dir, { clusterName: 'control-plane' });
    const member = await open(null, { clusterName: 'member-1' });
    const api = directApi(member);
    assert.equal((await ensureMeshIdentity(api, cp1, 'member-1', KEY)).installed, true);
    const first = member.intermediateInfo();
    const chain1 = await workloadChain(member);
    cp1.close();
    const cp2 = await open(dir, { clusterName: 'control-plane' });
    assert.equal(cp2.rootFingerprint, cp1.rootFingerprint);
    const r = await ensureMeshIdentity(api, cp2, 'member-1', KEY);
    assert.equal(r.installed, false);
    assert.equal(api.calls.csr, 1);
    assert.deepEqual(member.intermediateInfo(), first);
    // The same intermediate (same certificate, so the same serial) issues the member's certificates.
    assert.equal((await workloadChain(member))[1], chain1[1]);
  });

  it('replaces a mesh CA from another root, and one due for rotation', async () => {
    const cpA = await open(null, { clusterName: 'control-plane' });
    const cpB = await open(null, { clusterName: 'other-cp' });
    const member = await open(null, { clusterName: 'member-1' });
    const api = directApi(member);
    await ensureMeshIdentity(api, cpA, 'member-1', KEY);
    assert.equal(member.intermediateInfo().rootFingerprint, cpA.rootFingerprint);
    const moved = await ensureMeshIdentity(api, cpB, 'member-1', KEY);
    assert.equal(moved.installed, true);
    assert.equal(member.intermediateInfo().rootFingerprint, cpB.rootFingerprint);
    verifyPeerChain(await workloadChain(member), cpB.rootPem);

    const chainBefore = await workloadChain(member);
    api.infoOverride = (i) => ({ ...i, rotationDue: true });
    const rotated = await ensureMeshIdentity(api, cpB, 'member-1', KEY);
    api.infoOverride = undefined;
    assert.equal(rotated.installed, true);
    assert.notEqual((await workloadChain(member))[1], chainBefore[1], 'a new intermediate');
    assert.equal(api.calls.install, 3);
  });

  it('leaves alone a cluster whose own mesh CA is from the same root (the control plane itself)', async () => {
    const cp = await open(null, { clusterName: 'control-plane' });
    const api = directApi(cp);
    api.infoOverride = (i) => ({ ...i, rotationDue: true });
    const r = await ensureMeshIdentity(api, cp, 'control-plane', 'default/default/default/control-plane');
    assert.equal(r.state.ok, true);
    assert.equal(r.installed, false);
    assert.equal(api.calls.csr, 0);
  });

  it('refuses a member of another trust domain: clear reason, nothing asked or installed', async () => {
    const cp = await open(null, { clusterName: 'control-plane' });
    const member = await open(null, { clusterName: 'member-x', trustDomain: 'other.example' });
    const api = directApi(member);
    const before = member.intermediateInfo();
    const r = await ensureMeshIdentity(api, cp, 'member-x', KEY);
    assert.equal(r.state.ok, false);
    assert.equal(r.state.reason, 'TrustDomainMismatch');
    assert.match(r.state.message, /is in trust domain "other\.example", this control plane's mesh is "crossmesh\.local".*nothing was installed; start the member with --trust-domain crossmesh\.local/);
    assert.deepEqual(api.calls, { info: 1, csr: 0, install: 0 });
    assert.deepEqual(member.intermediateInfo(), before);
  });

  it('names the step and the member\'s refusal in a failure', async () => {
    const cp = await open(null, { clusterName: 'control-plane' });
    const member = await open(null, { clusterName: 'member-1' });
    const api = directApi(member);
    api.failNext.push(new CrossmeshError('CM_ERR_UNAVAILABLE', 'cluster API member-1 at http://127.0.0.1:1 is unreachable: connect ECONNREFUSED'));
    let r = await ensureMeshIdentity(api, cp, 'member-1', KEY);
    assert.deepEqual([r.state.ok, r.state.reason], [false, 'Unreachable']);
    assert.match(r.state.message, /reading its mesh CA \(GET \/apis\/identity\.crossmesh\.io\/v1\/intermediate\): cluster API member-1 .* unreachable/);
    api.failNext.push(new CrossmeshError('CM_ERR_NOT_FOUND', 'the server could not find the requested resource'));
    r = await ensureMeshIdentity(api, cp, 'member-1', KEY);
    assert.equal(r.state.reason, 'NotSupported');
    assert.match(r.state.message, /no mesh identity endpoints/);
    // A signed chain the member refuses (here: not for its pending key).
    const bad: MemberIdentityApi = { ...api, info: () => api.info(), csr: async () => (await open(null, { clusterName: 'member-1' })).createIntermediateCsr('crossmesh.local'), install: (c) => api.install(c) };
    await member.createIntermediateCsr('crossmesh.local');
    r = await ensureMeshIdentity(bad, cp, 'member-1', KEY);
    assert.equal(r.state.reason, 'Refused');
    assert.match(r.state.message, /installing its mesh CA \(PUT .*\) was refused: certificateChain: .* is not for the key of this cluster's pending CSR/);
    assert.equal(member.intermediateInfo().joined, false, 'nothing installed');
  });

  it('MeshIdentitySync: retries with back-off, reports once per change, keeps the last state while the member is away', async () => {
    const cp = await open(null, { clusterName: 'control-plane' });
    const member = await open(null, { clusterName: 'member-1' });
    const api = directApi(member);
    const down = () => new CrossmeshError('CM_ERR_UNAVAILABLE', 'cluster API member-1 is unreachable');
    api.failNext.push(down(), down(), down());
    // The sync's timers are unref'd (a cluster process's servers keep it alive): this one does here.
    const keepAlive = setInterval(() => undefined, 1000);
    after(() => clearInterval(keepAlive));
    const sync = new MeshIdentitySync(api, cp, 'member-1', KEY, { backoff: { initialMs: 5, maxMs: 20 }, recheckMs: 60_000 });
    const states: MeshIdentityState[] = [];
    const gotOk = new Promise<void>((resolve) => sync.on('state', (s) => {
      states.push(s);
      if (s.ok) resolve();
    }));
    sync.trigger();
    sync.trigger(); // coalesced with the running check
    await gotOk;
    await sync.idle();
    assert.deepEqual(states.map((s) => s.reason), ['Unreachable', 'Issued'], 'three failures, one report');
    assert.equal(api.calls.info, 4);
    assert.equal(sync.counts.installs, 1);
    assert.equal(member.intermediateInfo().rootFingerprint, cp.rootFingerprint);

    // Away after success: the condition keeps the last-known mesh CA, retries go on while active.
    api.failNext.push(down());
    sync.trigger();
    await sync.idle();
    await new Promise((r) => setTimeout(r, 30));
    await sync.idle();
    assert.equal(states.length, 2, 'no new state for a member that is only away');
    assert.equal(sync.current?.ok, true);
    assert.equal(api.calls.csr, 1, 'the retry found the mesh CA valid');

    // Paused (the member is away): no checks until a trigger.
    sync.pause();
    const n = api.calls.info;
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(api.calls.info, n);
    sync.stop();
    sync.trigger();
    assert.equal(api.calls.info, n, 'stopped');
  });

  it('memberIdentityApi speaks the endpoints over ApiClient.raw (paths, bodies, Status errors)', async () => {
    const cp = await open(null, { clusterName: 'control-plane' });
    const member = await open(null, { clusterName: 'member-1' });
    const seen: string[] = [];
    const server: Server = createServer((req, res) => void (async () => {
      seen.push(`${req.method} ${req.url}`);
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      try {
        if (req.headers.authorization !== 'Bearer admin') throw new CrossmeshError('CM_ERR_UNAUTHORIZED', 'Unauthorized');
        const text = await readBody(req, 1 << 20);
        const body = text.length ? JSON.parse(text.toString()) : undefined;
        if (req.method === 'GET' && req.url === INTERMEDIATE_PATH) return send(200, member.intermediateInfo());
        if (req.method === 'POST' && req.url === INTERMEDIATE_CSR_PATH) return send(200, { csr: await member.createIntermediateCsr(body.trustDomain) });
        if (req.method === 'PUT' && req.url === INTERMEDIATE_PATH) return send(200, await member.installIntermediate(body.certificateChain));
        throw new CrossmeshError('CM_ERR_NOT_FOUND', 'the server could not find the requested resource');
      } catch (err) {
        const st = statusFromError(err);
        send(st.code, st);
      }
    })());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const server0 = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = new ApiClient({ name: 'member-1', server: server0, token: 'admin' });
    const wrong = new ApiClient({ name: 'member-1', server: server0, token: 'nope' });
    try {
      const r = await ensureMeshIdentity(memberIdentityApi(client), cp, 'member-1', KEY);
      assert.equal(r.installed, true, r.state.message);
      assert.deepEqual(seen, [`GET ${INTERMEDIATE_PATH}`, `POST ${INTERMEDIATE_CSR_PATH}`, `PUT ${INTERMEDIATE_PATH}`]);
      assert.equal(member.intermediateInfo().rootFingerprint, cp.rootFingerprint);
      const denied = await ensureMeshIdentity(memberIdentityApi(wrong), cp, 'member-1', KEY);
      assert.equal(denied.state.reason, 'Unauthorized');
    } finally {
      await client.close();
      await wrong.close();
      server.close();
    }
  });
});
