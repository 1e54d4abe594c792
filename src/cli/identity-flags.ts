/**
 * The mesh identity flags of `crossmesh up` and `crossmesh cluster`: --ca-cert/--ca-key (the
 * cluster root, instead of a generated one), --trust-domain, --insecure-plaintext,
 * --workload-cert-ttl. Parsed and checked here (light: no X.509 library unless a CA file is
 * given), then passed on to the cluster processes as flags.
 */
import { resolve } from 'node:path';
import { parseGoDuration } from '../api/duration.js';
import { CrossmeshError } from '../errors.js';
import { validateTrustDomain } from '../identity/spiffe.js';

const MAX_WORKLOAD_TTL_SECONDS = 365 * 24 * 3600;

export interface IdentityFlags {
  /** Absolute paths. */
  caCert?: string;
  caKey?: string;
  trustDomain?: string;
  insecurePlaintext?: boolean;
  workloadCertTtlSeconds?: number;
}

/** `--workload-cert-ttl` (Go duration, as everywhere in crossmesh): whole seconds, 1s to 1 year. */
export function parseWorkloadCertTtl(text: string): number {
  let ms: number;
  try {
    ms = parseGoDuration(text);
  } catch (err) {
    throw new CrossmeshError('CM_ERR_USAGE', `--workload-cert-ttl: ${(err as Error).message}`, { cause: err });
  }
  if (ms < 1000 || ms % 1000 !== 0) throw new CrossmeshError('CM_ERR_USAGE', `--workload-cert-ttl ${text}: give whole seconds, at least 1s (e.g. 10s, 1h, 24h)`);
  if (ms / 1000 > MAX_WORKLOAD_TTL_SECONDS) throw new CrossmeshError('CM_ERR_USAGE', `--workload-cert-ttl ${text}: at most 8760h (1 year; the cluster's intermediate CA lives a year)`);
  return ms / 1000;
}

/** The flags as given on the command line (undefined = not given), checked for usage errors. */
export function identityFlags(o: { caCert?: string; caKey?: string; trustDomain?: string; insecurePlaintext?: boolean; workloadCertTtl?: string }): IdentityFlags {
  if ((o.caCert === undefined) !== (o.caKey === undefined)) {
    throw new CrossmeshError('CM_ERR_USAGE', o.caCert === undefined ? '--ca-key needs --ca-cert (the CA certificate it belongs to)' : '--ca-cert needs --ca-key (the CA\'s private key)');
  }
  if (o.trustDomain !== undefined) {
    try {
      validateTrustDomain(o.trustDomain);
    } catch (err) {
      throw new CrossmeshError('CM_ERR_USAGE', `--trust-domain: ${(err as Error).message}`, { cause: err });
    }
  }
  return {
    ...(o.caCert !== undefined ? { caCert: resolve(o.caCert), caKey: resolve(o.caKey!) } : {}),
    ...(o.trustDomain !== undefined ? { trustDomain: o.trustDomain } : {}),
    ...(o.insecurePlaintext ? { insecurePlaintext: true } : {}),
    ...(o.workloadCertTtl !== undefined ? { workloadCertTtlSeconds: parseWorkloadCertTtl(o.workloadCertTtl) } : {}),
  };
}

/** The `crossmesh cluster` arguments for these flags (`withCa`: this cluster gets the supplied root). */
export function identityArgs(f: IdentityFlags, withCa: boolean): string[] {
  const args: string[] = [];
  if (withCa && f.caCert) args.push('--ca-cert', f.caCert, '--ca-key', f.caKey!);
  if (f.trustDomain !== undefined) args.push('--trust-domain', f.trustDomain);
  if (f.insecurePlaintext) args.push('--insecure-plaintext');
  if (f.workloadCertTtlSeconds !== undefined) args.push('--workload-cert-ttl', `${f.workloadCertTtlSeconds}s`);
  return args;
}
