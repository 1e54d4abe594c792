import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CrossmeshError } from '../errors.js';
import { decodeProtobufObject } from './protobuf.js';

// A minimal protobuf writer, to build bodies the way client-go's generated code lays them out.
function varint(n: bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return out;
}
const bytes = (num: number, data: Buffer | number[]) => Buffer.from([...varint(BigInt((num << 3) | 2)), ...varint(BigInt(data.length)), ...data]);
const str = (num: number, s: string) => bytes(num, Buffer.from(s));
const int = (num: number, n: number) => Buffer.from([...varint(BigInt(num << 3)), ...varint(BigInt(n))]);
const msg = (...parts: Buffer[]) => Buffer.concat(parts);
const entry = (num: number, k: string, v: Buffer) => bytes(num, msg(str(1, k), v));

function envelope(apiVersion: string, kind: string, raw: Buffer): Buffer {
  return Buffer.concat([Buffer.from('k8s\0', 'binary'), bytes(1, msg(str(1, apiVersion), str(2, kind))), bytes(2, raw)]);
}

// Go's zero time.Time, as generated code writes creationTimestamp when it is unset.
const zeroTime = bytes(8, int(1, -62135596800));

describe('protobuf request bodies', () => {
  it('kubectl create namespace: zero times become null, empty strings are left out, spec and status stay objects', () => {
    const meta = msg(str(1, 'x'), str(2, ''), str(3, ''), zeroTime, entry(11, 'team', str(2, 'a')));
    const body = envelope('v1', 'Namespace', msg(bytes(1, meta), bytes(2, []), bytes(3, str(1, ''))));
    assert.deepEqual(decodeProtobufObject(body), {
      apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x', labels: { team: 'a' } }, spec: {}, status: {},
    });
  });

  it('kubectl create secret generic: data bytes as base64; Service ports with int-or-string targetPort', () => {
    const secret = envelope('v1', 'Secret', msg(bytes(1, msg(str(1, 's'), str(3, 'ns'))), entry(2, 'k', bytes(2, Buffer.from('v'))), str(3, 'Opaque')));
    assert.deepEqual(decodeProtobufObject(secret), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'ns' }, data: { k: 'dg==' }, type: 'Opaque' });
    const port = msg(str(1, 'http'), str(2, 'TCP'), int(3, 80), bytes(4, msg(int(1, 1), str(3, 'web'))));
    const svc = envelope('v1', 'Service', msg(bytes(1, str(1, 'web')), bytes(2, msg(bytes(1, port), entry(2, 'app', str(2, 'web')), str(4, 'ClusterIP')))));
    assert.deepEqual((decodeProtobufObject(svc) as any).spec, { ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 'web' }], selector: { app: 'web' }, type: 'ClusterIP' });
  });

  it('other kinds are 415 naming JSON; a body without the magic or truncated is 400', () => {
    assert.throws(() => decodeProtobufObject(envelope('apps/v1', 'Deployment', Buffer.alloc(0))), (e: CrossmeshError) => e.code === 'CM_ERR_UNSUPPORTED_MEDIA' && /application\/json/.test(e.message));
    assert.throws(() => decodeProtobufObject(Buffer.from('{"kind":"Namespace"}')), (e: CrossmeshError) => e.code === 'CM_ERR_BAD_REQUEST' && /magic/.test(e.message));
    assert.throws(() => decodeProtobufObject(envelope('v1', 'Namespace', Buffer.from([0x0a, 0x10, 0x01]))), (e: CrossmeshError) => e.code === 'CM_ERR_BAD_REQUEST');
  });
});
