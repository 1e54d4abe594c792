import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CrossmeshError } from '../errors.js';
import { formatSpiffeId, formatWorkloadId, parseSpiffeId, parseWorkloadId, validateTrustDomain } from './spiffe.js';

const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/);
const trustDomain = fc.stringMatching(/^[a-z0-9._-]{1,40}$/);
const segment = fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/).filter((s) => s !== '.' && s !== '..');

function refused(value: string): void {
  assert.throws(() => parseSpiffeId(value), (err: unknown) => err instanceof CrossmeshError && err.code === 'CM_ERR_IDENTITY_INVALID', value);
}

describe('SPIFFE IDs', () => {
  it('format(parse(x)) is x for every valid ID, and parse(format(id)) is id', () => {
    fc.assert(
      fc.property(trustDomain, fc.array(segment, { maxLength: 6 }), (td, segs) => {
        const value = `spiffe://${td}${segs.map((s) => `/${s}`).join('')}`;
        const id = parseSpiffeId(value);
        assert.equal(formatSpiffeId(id), value);
        assert.deepEqual(parseSpiffeId(formatSpiffeId(id)), id);
      }),
    );
  });

  it('workload IDs round-trip through parse and format', () => {
    fc.assert(
      fc.property(trustDomain, label, label, (td, ns, sa) => {
        const value = `spiffe://${td}/ns/${ns}/sa/${sa}`;
        const id = parseWorkloadId(value);
        assert.deepEqual(id, { trustDomain: td, namespace: ns, serviceAccount: sa });
        assert.equal(formatWorkloadId(id), value);
      }),
    );
  });

  it('refuses hostile strings: any character outside the allowed sets, inserted anywhere', () => {
    const hostile = fc.constantFrom('/', '?', '#', ':', '@', '%', ' ', '\n', '\0', '\\', 'A', 'é', '\u202e', '[', '"');
    fc.assert(
      fc.property(trustDomain, label, label, hostile, fc.nat(), (td, ns, sa, bad, at) => {
        // In the trust domain: every one of these is out of [a-z0-9._-] ('/' would start the path, so skipped).
        if (bad !== '/') {
          const i = at % (td.length + 1);
          refused(`spiffe://${td.slice(0, i)}${bad}${td.slice(i)}/ns/${ns}/sa/${sa}`);
        }
        // In the path: all but '/' and 'A' are out of [A-Za-z0-9._-]; a '/' makes an empty segment
        // or a non-workload path, an 'A' a non-DNS-label name.
        const path = `/ns/${ns}/sa/${sa}`;
        const j = 1 + (at % path.length);
        const value = `spiffe://${td}${path.slice(0, j)}${bad}${path.slice(j)}`;
        assert.throws(() => parseWorkloadId(value), (err: unknown) => err instanceof CrossmeshError && err.code === 'CM_ERR_IDENTITY_INVALID', value);
      }),
    );
  });

  it('refuses the spec-named cases with a message naming the part', () => {
    for (const v of [
      '',
      'spiffe://',
      'spiffe:///ns/a/sa/b',
      'SPIFFE://td/ns/a/sa/b',
      'https://td/ns/a/sa/b',
      'spiffe://TD.local/ns/a',
      'spiffe://td:8080/ns/a',
      'spiffe://user@td/ns/a',
      'spiffe://td/ns/a?x=1',
      'spiffe://td/ns/a#frag',
      'spiffe://td/ns//a',
      'spiffe://td/ns/a/',
      'spiffe://td/ns/./a',
      'spiffe://td/ns/../a',
      'spiffe://td/ns/%2e%2e/a',
      `spiffe://${'a'.repeat(256)}`,
      `spiffe://td/${'a/'.repeat(1100)}a`,
    ]) refused(v);
    assert.throws(() => parseSpiffeId('spiffe://td:1/x'), /trust domain/);
    assert.throws(() => parseSpiffeId('spiffe://td/a/../b'), /"\." or "\.\." segment/);
  });

  it('workload IDs need /ns/<label>/sa/<label>', () => {
    assert.deepEqual(parseWorkloadId('spiffe://crossmesh.local/ns/shop/sa/cart'), { trustDomain: 'crossmesh.local', namespace: 'shop', serviceAccount: 'cart' });
    for (const v of ['spiffe://td', 'spiffe://td/ns/shop', 'spiffe://td/ns/shop/sa/cart/x', 'spiffe://td/sa/cart/ns/shop', 'spiffe://td/ns/Shop/sa/cart', 'spiffe://td/ns/shop/sa/-cart', `spiffe://td/ns/${'a'.repeat(64)}/sa/b`, 'spiffe://td/ns/a_b/sa/c']) {
      assert.throws(() => parseWorkloadId(v), (err: unknown) => err instanceof CrossmeshError && err.code === 'CM_ERR_IDENTITY_INVALID', v);
    }
    assert.throws(() => formatWorkloadId({ trustDomain: 'td', namespace: 'a/sa/b', serviceAccount: 'c' }), /CM_ERR|workload|DNS|path/);
  });

  it('validateTrustDomain', () => {
    assert.equal(validateTrustDomain('crossmesh.local'), 'crossmesh.local');
    for (const td of ['', 'Crossmesh.local', 'td:1', 'a/b', 'a b']) assert.throws(() => validateTrustDomain(td), /invalid trust domain/);
  });
});
