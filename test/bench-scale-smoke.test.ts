import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LeaseResult, SizeResult } from '../bench/scale.js';

const SCALE = fileURLToPath(new URL('../bench/scale.js', import.meta.url));

describe('scale bench smoke (npm run bench:scale -- --smoke)', () => {
  it('starts a control plane and two members as processes, grows them, and measures every figure of the scale table', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'crossmesh-scale-smoke-'));
    const out = join(dir, 'scale.json');
    try {
      const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [SCALE, '--smoke', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
        let so = '';
        let se = '';
        child.stdout.on('data', (d) => (so += d));
        child.stderr.on('data', (d) => (se += d));
        child.on('close', (c) => resolve({ code: c, stdout: so, stderr: se }));
      });
      assert.equal(code, 0, stderr.slice(-3000));
      const result = JSON.parse(readFileSync(out, 'utf8')) as { sizes: SizeResult[]; leases: LeaseResult };
      assert.equal(result.sizes.length, 1);
      const [r] = result.sizes;
      assert.equal(r.members, 2);
      assert.equal(r.servicesPerMember, 5);
      assert.ok(r.syncMs > 0);
      assert.equal(r.propagationMs.samples, 3);
      assert.ok(r.propagationMs.p50 > 0 && r.propagationMs.p99 >= r.propagationMs.p50, JSON.stringify(r.propagationMs));
      assert.ok(r.resync.ms > 0, 'resync measured');
      assert.equal(r.resync.importsDeleted, 0, 'no import deleted while the control plane restarted');
      assert.equal(r.resync.importsRecreated, 0, 'no import re-created while the control plane restarted');
      assert.ok(r.controlPlane.rssMb > 0 && r.memberRssMbMax > 0 && r.sidecar.rssMb > 0);
      assert.ok(r.sidecar.routeUpdates > 0 && r.sidecar.routeUpdateMeanMs > 0, 'the sidecar updated its routes for the probes');
      assert.ok(r.controlPlaneTraffic.requestsPerChange > 0, 'the control plane wrote imports for the probes');
      assert.ok(r.storeBytes.controlPlane > 0 && r.storeBytes.memberMean > 0);
      assert.equal(result.leases.failed, 0);
      assert.ok(result.leases.renewalsPerSecond > 0 && result.leases.clusterCpuPercent > 0);
      assert.match(stdout, /\| N members \| S services\/member \|/);
      assert.match(stdout, /Leases: 50 renewing once a second each/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
