import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { freeChildPort } from './net.js';

describe('freeChildPort', () => {
  it('picks a bindable port below the kernel ephemeral range, so a listen(0) right after can never get the same one', async () => {
    const lo = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    const port = await freeChildPort();
    assert.ok(port > 1024 && port < lo, `${port} is not below ${lo}`);
    const taken: number[] = [];
    for (let i = 0; i < 20; i++) {
      taken.push(await new Promise<number>((resolve) => {
        const s = createServer();
        s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
      }));
    }
    assert.ok(!taken.includes(port));
    await new Promise<void>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
    });
  });
});
