import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isValidDnsLabel, isValidDnsSubdomain, parseGoDuration } from './index.js';

test('parseGoDuration: Go syntax', () => {
  const ok: Array<[string, number]> = [
    ['5s', 5000], ['1m30s', 90_000], ['500ms', 500], ['1h', 3_600_000], ['1.5h', 5_400_000], ['0', 0], ['0s', 0],
    ['-2s', -2000], ['+3s', 3000], ['.5s', 500], ['1h2m3s4ms', 3_723_004], ['1000us', 1], ['2000000ns', 2], ['10\u00b5s', 0.01],
  ];
  for (const [s, ms] of ok) assert.equal(parseGoDuration(s), ms, s);
  for (const bad of ['', '5', 's', '1x', '1.s.', '5 s', 'abc', '-', '1m30', '.s']) {
    assert.throws(() => parseGoDuration(bad), /invalid duration|must be a string/, bad);
  }
  assert.throws(() => parseGoDuration('10d'), /unknown unit "d"/);
  assert.throws(() => parseGoDuration('10'), /missing unit/);
});

test('DNS names', () => {
  assert.ok(isValidDnsLabel('nodeapp'));
  assert.ok(isValidDnsLabel('a-1'));
  assert.ok(!isValidDnsLabel('a.b'));
  assert.ok(!isValidDnsLabel('-a'));
  assert.ok(!isValidDnsLabel('A'));
  assert.ok(!isValidDnsLabel('a'.repeat(64)));
  assert.ok(isValidDnsLabel('a'.repeat(63)));
  assert.ok(isValidDnsSubdomain('a.b-c.d'));
  assert.ok(!isValidDnsSubdomain('a..b'));
  assert.ok(!isValidDnsSubdomain('a_b'));
  assert.ok(!isValidDnsSubdomain(''));
  assert.ok(!isValidDnsSubdomain('a'.repeat(254)));
});
