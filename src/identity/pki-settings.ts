/**
 * The settings a cluster's PKI keeps across restarts (`<dataDir>/pki/settings.json`): what its
 * certificates were made with. Light on purpose (node:fs and node:crypto only): `crossmesh up`
 * checks its flags against them before it starts anything, without loading the X.509 library.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CrossmeshError, type ErrorCode } from '../errors.js';
import type { MeshMode } from './api.js';

export const PKI_DIR = 'pki';
export const PKI_FILES = {
  settings: 'settings.json',
  /** The cluster root: its certificate (with the chain to the top root, for a supplied intermediate). */
  rootCert: 'root.crt',
  rootKey: 'root.key',
  /** The PEM root API clients must trust (kubeconfig certificate-authority-data). */
  ca: 'ca.crt',
  /** The cluster's mesh CA (intermediate): its certificate then the chain up to and including its root. */
  meshCaCert: 'mesh-ca.crt',
  meshCaKey: 'mesh-ca.key',
  /** The key of the last intermediate CSR, until a certificate for it is installed. */
  pendingKey: 'mesh-ca-pending.key',
  /** ES256 key of the cluster's service account tokens. */
  tokenKey: 'token.key',
} as const;

export interface PkiSettings {
  trustDomain: string;
  mode: MeshMode;
  workloadCertTtlSeconds: number;
  /** Whether the cluster root was generated here or supplied (`--ca-cert`/`--ca-key`). */
  root: 'generated' | 'supplied';
  /** SHA-256 fingerprint of the cluster root's certificate. */
  rootFingerprint: string;
}

/** What a start was given; undefined = not given (the persisted value, or the default, applies). */
export interface PkiSettingsGiven {
  trustDomain?: string;
  mode?: MeshMode;
  workloadCertTtlSeconds?: number;
  /** The supplied CA certificate (PEM; its first certificate is the cluster root). */
  caCertPem?: string;
}

/** SHA-256 fingerprint of a PEM certificate (its first one), `AB:CD:...` as openssl prints it. */
export function fingerprintOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

export function readPkiSettings(pkiDir: string): PkiSettings | undefined {
  const file = join(pkiDir, PKI_FILES.settings);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as PkiSettings;
  } catch (err) {
    throw new CrossmeshError('CM_ERR_CONFIG', `${file} is not valid JSON; it records how the cluster's certificates were made (restore it, or delete the cluster's data with \`crossmesh down --purge\`)`, { cause: err });
  }
}

const START_OVER = 'its certificates were made with it; to change it, delete the cluster\'s data (`crossmesh down --purge`) and start it again';

/**
 * Refuses settings that differ from those the cluster was first started with (each names the
 * flag, both values and what to do). `code`: CM_ERR_USAGE from the CLI, CM_ERR_CONFIG in the
 * cluster process.
 */
export function checkPkiSettings(clusterName: string, persisted: PkiSettings, given: PkiSettingsGiven, code: ErrorCode = 'CM_ERR_CONFIG'): void {
  const refuse = (msg: string) => {
    throw new CrossmeshError(code, `cluster ${clusterName}: ${msg}`);
  };
  if (given.trustDomain !== undefined && given.trustDomain !== persisted.trustDomain) {
    refuse(`--trust-domain ${given.trustDomain}: the cluster's trust domain is "${persisted.trustDomain}"; ${START_OVER}`);
  }
  if (given.mode !== undefined && given.mode !== persisted.mode) {
    refuse(`${given.mode === 'plaintext' ? '--insecure-plaintext' : 'mesh mode mtls'}: the cluster's mesh mode is "${persisted.mode}"; ${START_OVER}`);
  }
  if (given.workloadCertTtlSeconds !== undefined && given.workloadCertTtlSeconds !== persisted.workloadCertTtlSeconds) {
    refuse(`--workload-cert-ttl ${given.workloadCertTtlSeconds}s: the cluster issues workload certificates for ${persisted.workloadCertTtlSeconds}s; ${START_OVER}`);
  }
  if (given.caCertPem !== undefined) {
    const fp = fingerprintOf(given.caCertPem);
    if (fp !== persisted.rootFingerprint) {
      refuse(`--ca-cert: the cluster already has ${persisted.root === 'generated' ? 'a root CA it generated' : 'another supplied root CA'} (SHA-256 ${persisted.rootFingerprint}), not this one (${fp}); its API certificate, kubeconfigs and workload certificates chain to it; to use another root, delete the cluster's data (\`crossmesh down --purge\`) and start it again with --ca-cert/--ca-key`);
    }
  }
}
