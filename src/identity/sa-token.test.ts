import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import { CrossmeshError } from '../errors.js';
import { PKI_FILES } from './pki-settings.js';
import { looksLikeJwt, SaTokens } from './sa-token.js';

function unauthorized(pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof CrossmeshError, String(err));
    assert.equal(err.code, 'CM_ERR_UNAUTHORIZED');
    assert.match(err.message, pattern);
    return true;
  };
}

describe('service account tokens', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'crossmesh-sat-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('issues ES256 JWTs with Kubernetes claims that verify back to the service account', async () => {
    const t = await SaTokens.open(null, { clusterName: 'cluster-1' });
    const issued = await t.issue({ namespace: 'shop', serviceAccount: 'cart', uid: 'u-1' });
    assert.ok(looksLikeJwt(issued.token));
    const [header, payload] = issued.token.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()));
    assert.equal(header.alg, 'ES256');
    assert.equal(payload.iss, 'crossmesh:cluster-1');
    assert.equal(payload.sub, 'system:serviceaccount:shop:cart');
    assert.deepEqual(payload.aud, ['crossmesh:cluster-1']);
    assert.deepEqual(payload['kubernetes.io'], { namespace: 'shop', serviceaccount: { name: 'cart', uid: 'u-1' } });
    assert.equal(payload.exp - payload.iat, 365 * 24 * 3600);
    const who = await t.verify(issued.token);
    assert.deepEqual({ ns: who.namespace, sa: who.serviceAccount, uid: who.uid }, { ns: 'shop', sa: 'cart', uid: 'u-1' });
  });

  it('refuses expired, forged, foreign and other-audience tokens, saying why', async () => {
    const t = await SaTokens.open(null, { clusterName: 'cluster-1' });
    const expired = await t.issue({ namespace: 'shop', serviceAccount: 'cart', expirationSeconds: 600, now: new Date(Date.now() - 3600_000) });
    await assert.rejects(t.verify(expired.token), unauthorized(/expired at .*request a new one/));
    const other = await SaTokens.open(null, { clusterName: 'cluster-1' });
    await assert.rejects(t.verify((await other.issue({ namespace: 'shop', serviceAccount: 'cart' })).token), unauthorized(/signature does not verify: it was not issued by this cluster/));
    const good = (await t.issue({ namespace: 'shop', serviceAccount: 'cart' })).token.split('.');
    const tampered = [good[0], Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(good[1], 'base64url').toString()), sub: 'system:serviceaccount:shop:admin' })).toString('base64url'), good[2]].join('.');
    await assert.rejects(t.verify(tampered), unauthorized(/signature does not verify/));
    const otherCluster = await SaTokens.open(null, { clusterName: 'cluster-2' });
    await assert.rejects(t.verify((await otherCluster.issue({ namespace: 'shop', serviceAccount: 'cart' })).token), unauthorized(/signature|issued by/));
    await assert.rejects(t.verify((await t.issue({ namespace: 'shop', serviceAccount: 'cart', audiences: ['vault'] })).token), unauthorized(/not for this API/));
    // alg "none" and an HS256 token are refused.
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${good[1]}.`;
    await assert.rejects(t.verify(none), unauthorized(/not a valid|ES256/));
    const hs = await new SignJWT({ sub: 'system:serviceaccount:shop:cart' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('crossmesh:cluster-1').setAudience('crossmesh:cluster-1').setExpirationTime('1h').sign(new Uint8Array(32));
    await assert.rejects(t.verify(hs), unauthorized(/ES256/));
    const { privateKey } = await generateKeyPair('ES256');
    const notSa = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setSubject('admin').setIssuer('crossmesh:cluster-1').setAudience('crossmesh:cluster-1').setExpirationTime('1h').sign(privateKey);
    await assert.rejects(t.verify(notSa), unauthorized(/signature/));
  });

  it('keeps its key across a restart (0600 in pki/)', async () => {
    const dir = join(tmp, 'pki');
    const a = await SaTokens.open(dir, { clusterName: 'cluster-1' });
    assert.equal(statSync(join(dir, PKI_FILES.tokenKey)).mode & 0o777, 0o600);
    const token = (await a.issue({ namespace: 'shop', serviceAccount: 'cart' })).token;
    const b = await SaTokens.open(dir, { clusterName: 'cluster-1' });
    assert.equal((await b.verify(token)).serviceAccount, 'cart');
  });
});
