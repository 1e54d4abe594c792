import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InboundAuthorizer, type PeerIdentity } from './authz.js';
import type { KubeObject } from '../api/types.js';

const peer = (cluster: string, namespace: string, serviceAccount: string): PeerIdentity =>
  ({ cluster, namespace, serviceAccount, spiffeId: `spiffe://crossmesh.local/ns/${namespace}/sa/${serviceAccount}` });
const exportOf = (serviceAccountName?: string): KubeObject =>
  ({ apiVersion: 'flomesh.io/v1alpha1', kind: 'ServiceExport', metadata: { name: 'nodeapp', namespace: 'dapr-test' }, spec: { rules: [], ...(serviceAccountName === undefined ? {} : { serviceAccountName }) } });

test('callers of the own cluster pass whatever the export says; others need an export that admits them', () => {
  const a = new InboundAuthorizer('cluster-1', 'dapr-test/nodeapp');
  assert.equal(a.check(peer('cluster-1', 'curl', 'curl')), undefined);
  const r = a.check(peer('cluster-2', 'curl', 'curl'));
  assert.equal(r?.status, 403);
  assert.equal(r?.code, 'CM_ERR_FORBIDDEN');
  assert.match(r!.message, /spiffe:\/\/crossmesh\.local\/ns\/curl\/sa\/curl of cluster cluster-2 refused: service dapr-test\/nodeapp is not exported from cluster cluster-1/);
  assert.equal(a.refused.not_exported, 1);

  a.update(exportOf());
  assert.equal(a.check(peer('cluster-2', 'curl', 'curl')), undefined, 'default "*" admits any identity');
  a.update(exportOf('curl'));
  assert.equal(a.check(peer('cluster-2', 'other', 'curl')), undefined, 'a bare name admits that service account in any namespace');
  const wrong = a.check(peer('cluster-3', 'curl', 'default'));
  assert.match(wrong!.message, /ServiceExport dapr-test\/nodeapp admits only service account "curl"/);
  a.update(exportOf('curl/curl'));
  assert.equal(a.check(peer('cluster-2', 'curl', 'curl')), undefined);
  assert.ok(a.check(peer('cluster-2', 'other', 'curl')), 'ns/sa admits exactly that one');
  assert.equal(a.refused.service_account, 2);
});

test('a cached decision per connection follows a changed export', () => {
  const a = new InboundAuthorizer('cluster-1', 'dapr-test/nodeapp');
  a.update(exportOf('curl'));
  const p = peer('cluster-2', 'curl', 'curl');
  assert.equal(a.check(p), undefined);
  assert.equal(a.check(p), undefined);
  a.update(exportOf('other'));
  assert.ok(a.check(p), 'same connection, new rule: refused');
  a.update(undefined);
  assert.equal(a.check(p)?.reason, 'not_exported');
});
