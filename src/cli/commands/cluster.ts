import { rmSync, writeFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startCluster } from '../../cluster/cluster.js';
import type { ClusterRecord } from '../home.js';
import { log } from '../../util/log.js';
import type { IdentityFlags } from '../identity-flags.js';

export interface ClusterCommandOptions extends IdentityFlags {
  name: string;
  apiPort: number;
  gatewayPort: number;
  meshPort: number;
  dataDir: string;
  host: string;
}

/**
 * `crossmesh cluster`: runs one cluster in this process until SIGTERM/SIGINT. Once listening it
 * writes cluster.json (pid and actual ports) into the data dir: `crossmesh up` waits for it,
 * and `--api-port 0` works because the real port is read back from there.
 */
export async function runClusterProcess(opts: ClusterCommandOptions): Promise<void> {
  const dataDir = resolve(opts.dataDir);
  // A supplied root is checked (naming the file that is wrong) before anything starts.
  const supplied = opts.caCert ? await (await import('../../identity/cluster-pki.js')).validateSuppliedCaFiles(opts.caCert, opts.caKey!, opts.trustDomain) : undefined;
  const cluster = await startCluster({
    name: opts.name, dataDir, host: opts.host, apiPort: opts.apiPort, gatewayPort: opts.gatewayPort, meshPort: opts.meshPort,
    trustDomain: opts.trustDomain, caCertPem: supplied?.certPem, caKeyPem: supplied?.keyPem,
    meshMode: opts.insecurePlaintext ? 'plaintext' : undefined, workloadCertTtlSeconds: opts.workloadCertTtlSeconds,
  });
  const record: ClusterRecord = {
    name: opts.name,
    pid: process.pid,
    apiUrl: cluster.apiUrl,
    apiPort: cluster.apiPort,
    gatewayPort: cluster.gatewayPort,
    meshPort: cluster.meshPort,
    host: opts.host,
    startedAt: new Date().toISOString(),
  };
  const file = join(dataDir, 'cluster.json');
  // ports.json outlives the process: a restart reuses the ports, so kubeconfigs stay valid.
  writeAtomic(join(dataDir, 'ports.json'), { apiPort: cluster.apiPort, gatewayPort: cluster.gatewayPort, meshPort: cluster.meshPort });
  writeAtomic(file, record);
  const { pki } = cluster;
  log.info(`cluster ${opts.name} ready: api ${cluster.apiUrl} (CA ${join(dataDir, 'pki', 'ca.crt')}), gateway port ${cluster.gatewayPort}, mesh port ${cluster.meshPort}, mesh ${pki.mode}, trust domain ${pki.trustDomain}, workload certificates ${pki.workloadTtlSeconds}s, data ${dataDir}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`cluster ${opts.name}: ${signal}, shutting down`);
    await cluster.close();
    rmSync(file, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

function writeAtomic(file: string, value: unknown): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(value, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}
