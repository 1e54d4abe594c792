import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kindFor } from '../src/api/index.js';
import type { Condition, KubeObject } from '../src/api/types.js';
import { ApiClient } from '../src/client/api-client.js';
import { renderKubeconfig } from '../src/client/kubeconfig.js';
import { startCluster, type RunningCluster } from '../src/cluster/cluster.js';
import { INTERMEDIATE_PATH, tokenRequestPath, WORKLOAD_CERTIFICATES_PATH, type IntermediateInfo, type TokenRequest, type WorkloadCertificateResponse } from '../src/identity/api.js';
import { createWorkloadCsr } from '../src/identity/csr.js';
import { PKI_DIR, PKI_FILES } from '../src/identity/pki-settings.js';
import { verifyPeerChain } from '../src/identity/verify.js';
import { eventually, tempDir } from './helpers.js';

const CLUSTERS = 'flomesh.io/clusters';
const CLUSTER = kindFor('flomesh.io/v1alpha1', 'Cluster');
const NS = kindFor('v1', 'Namespace');
const SA = kindFor('v1', 'ServiceAccount');
const CART = 'spiffe://crossmesh.local/ns/shop/sa/cart';

const conditionOf = (obj: KubeObject | undefined, type: string) => (obj?.status?.conditions as Condition[] | undefined)?.find((c) => c.type === type);

/**
 * A control plane and member clusters started in process with `startCluster()` (as `crossmesh
 * cluster` runs them: HTTPS API with the identity endpoints, the control plane's
 * MulticlusterController given its ClusterPki), the members joined by Cluster resources carrying
 * their kubeconfigs. Everything goes over the real APIs; the control plane's state is read from
 * its store.
 */
describe('control plane issues member mesh CAs through the members\' identity API', () => {
  const { dir, cleanup } = tempDir('crossmesh-identity-join-');
  const members = new Map<string, RunningCluster>();
  const admins = new Map<string, ApiClient>();
  let cp: RunningCluster;

  async function startMember(name: string, opts: { trustDomain?: string; apiPort?: number; gatewayPort?: number } = {}): Promise<RunningCluster> {
    const m = await startCluster({ name, dataDir: join(dir, name), ...opts });
    members.set(name, m);
    await admins.get(name)?.close();
    admins.set(name, new ApiClient(m.endpoint));
    return m;
  }

  const startControlPlane = async () => {
    cp = await startCluster({ name: 'control-plane', dataDir: join(dir, 'control-plane') });
  };

  const clusterObj = (name: string) => cp.store.get({ storageKey: CLUSTERS, name });
  const waitFor = (name: string, type: string, status: 'True' | 'False') =>
    eventually(() => {
      const c = conditionOf(clusterObj(name), type);
      return c?.status === status ? c : undefined;
    }, 10_000, `${name} ${type}=${status}`);
  const intermediateOf = async (name: string) => (await admins.get(name)!.raw('GET', INTERMEDIATE_PATH)) as IntermediateInfo;

  /** A sidecar's way to its certificate: a service account token, then a CSR to the member's API. */
  async function workloadCert(name: string): Promise<WorkloadCertificateResponse> {
    const admin = admins.get(name)!;
    if (!(await admin.get(NS, 'shop'))) await admin.create(NS, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    if (!(await admin.get(SA, 'cart', 'shop'))) await admin.create(SA, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'cart', namespace: 'shop' } });
    const tr = (await admin.raw('POST', tokenRequestPath('shop', 'cart'), { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: {} })) as TokenRequest;
    const sa = new ApiClient({ ...members.get(name)!.endpoint, token: tr.status!.token });
    try {
      const { csrPem } = await createWorkloadCsr(CART);
      return (await sa.raw('POST', WORKLOAD_CERTIFICATES_PATH, { csr: csrPem })) as WorkloadCertificateResponse;
    } finally {
      await sa.close();
    }
  }

  before(async () => {
    await startMember('member-1');
    await startMember('member-x', { trustDomain: 'other.example' });
    await startControlPlane();
    const api = new ApiClient(cp.endpoint);
    try {
      for (const [name, m] of members) {
        await api.create(CLUSTER, {
          apiVersion: 'flomesh.io/v1alpha1',
          kind: 'Cluster',
          metadata: { name },
          spec: { gatewayHost: '127.0.0.1', gatewayPort: m.gatewayPort, kubeconfig: renderKubeconfig(m.endpoint) },
        });
      }
    } finally {
      await api.close();
    }
  });

  after(async () => {
    await cp.close();
    for (const a of admins.values()) await a.close();
    for (const m of members.values()) await m.close();
    cleanup();
  });

  it('after joining, the member\'s intermediate chains to the control plane root, and its workload certificates verify against it', async () => {
    await waitFor('member-1', 'Managed', 'True');
    const cond = await waitFor('member-1', 'MeshIdentity', 'True');
    const info = await intermediateOf('member-1');
    assert.equal(info.rootFingerprint, cp.pki.rootFingerprint);
    assert.equal(info.joined, true);
    assert.equal(info.rotationDue, false);
    assert.equal(info.trustDomain, 'crossmesh.local');
    assert.match(info.subject, /CN=crossmesh cluster member-1 CA/);
    assert.equal(cond.reason, 'Issued');
    assert.equal(cond.message, `Cluster default/default/default/member-1: mesh CA "${info.subject}" issued by "${info.issuer}" (mesh root ${cp.pki.rootFingerprint}), valid until ${info.notAfter}.`);

    const cert = await workloadCert('member-1');
    assert.equal(cert.spiffeId, CART);
    const peer = verifyPeerChain(cert.certificateChain, cp.pki.rootPem);
    assert.equal(peer.spiffeId, CART);
    assert.equal(peer.cluster, 'member-1');
    // The member's trust bundle now starts with the mesh root.
    assert.equal(cert.roots[0].trim(), cp.pki.rootPem.trim());
    assert.equal(cp.multicluster.meshIdentity('member-1')!.installs, 1);
  });

  it('a member of another trust domain is refused with a clear condition; nothing is installed', async () => {
    const cond = await waitFor('member-x', 'MeshIdentity', 'False');
    assert.equal(cond.reason, 'TrustDomainMismatch');
    assert.equal(cond.message, 'Cluster default/default/default/member-x is in trust domain "other.example", this control plane\'s mesh is "crossmesh.local": its mesh CA can\'t be issued by this mesh\'s root, nothing was installed; start the member with --trust-domain crossmesh.local.');
    const info = await intermediateOf('member-x');
    assert.equal(info.joined, false);
    assert.notEqual(info.rootFingerprint, cp.pki.rootFingerprint);
    assert.equal(cp.multicluster.meshIdentity('member-x')!.installs, 0);
    // The claim itself stands: the mesh identity is a condition of its own.
    assert.equal(conditionOf(clusterObj('member-x'), 'Managed')?.status, 'True');
  });

  it('a restarted control plane re-issues nothing: the same intermediate (serial, notAfter), the condition untouched', async () => {
    const before = await intermediateOf('member-1');
    const intermediateBefore = (await workloadCert('member-1')).certificateChain[1];
    const condBefore = conditionOf(clusterObj('member-1'), 'MeshIdentity');
    const rvBefore = clusterObj('member-1')!.metadata.resourceVersion;
    await cp.close();
    await startControlPlane();
    const seen = await eventually(() => {
      const s = cp.multicluster.meshIdentity('member-1');
      return s && s.checks >= 1 ? s : undefined;
    }, 10_000, 'the restarted control plane to check member-1');
    assert.equal(seen.installs, 0, 'nothing re-issued');
    assert.equal(seen.state?.ok, true);
    assert.deepEqual(await intermediateOf('member-1'), before);
    assert.equal((await workloadCert('member-1')).certificateChain[1], intermediateBefore);
    assert.deepEqual(conditionOf(clusterObj('member-1'), 'MeshIdentity'), condBefore);
    // The Managed condition is unchanged as well, so the Cluster was not written at all.
    await waitFor('member-1', 'Managed', 'True');
    assert.equal(clusterObj('member-1')!.metadata.resourceVersion, rvBefore);
  });

  it('a member that comes back without its mesh CA gets a new one on reconnect', async () => {
    const m = members.get('member-1')!;
    const { apiPort, gatewayPort } = m;
    await m.close();
    await waitFor('member-1', 'Managed', 'False');
    // Its mesh CA files lost: it starts with its own again.
    for (const f of [PKI_FILES.meshCaCert, PKI_FILES.meshCaKey]) rmSync(join(dir, 'member-1', PKI_DIR, f), { force: true });
    await startMember('member-1', { apiPort, gatewayPort });
    assert.equal((await intermediateOf('member-1')).joined, false);
    await waitFor('member-1', 'Managed', 'True');
    const info = await eventually(async () => {
      const i = await intermediateOf('member-1');
      return i.joined && i.rootFingerprint === cp.pki.rootFingerprint ? i : undefined;
    }, 10_000, 'member-1 to hold a mesh CA from the control plane root again');
    verifyPeerChain((await workloadCert('member-1')).certificateChain, cp.pki.rootPem);
    assert.equal(cp.multicluster.meshIdentity('member-1')!.installs, 1, 'one install, by the reconnect check');
    const cond = await waitFor('member-1', 'MeshIdentity', 'True');
    assert.equal(cond.message, `Cluster default/default/default/member-1: mesh CA "${info.subject}" issued by "${info.issuer}" (mesh root ${cp.pki.rootFingerprint}), valid until ${info.notAfter}.`);
  });
});
