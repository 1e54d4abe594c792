import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { CrossmeshError } from '../errors.js';

/** Where an API is and how to authenticate: what a kubeconfig's current context resolves to. */
export interface ApiEndpoint {
  /** Context / cluster name from the kubeconfig. */
  name: string;
  server: string;
  token: string;
  /** PEM of the CA(s) the server's certificate must chain to (kubeconfig certificate-authority[-data]). */
  ca?: string;
}

const kubeconfigSchema = z.object({
  clusters: z.array(z.object({
    name: z.string(),
    cluster: z.object({ server: z.string().url(), 'certificate-authority-data': z.string().optional(), 'certificate-authority': z.string().optional() }).passthrough(),
  })).min(1),
  users: z.array(z.object({ name: z.string(), user: z.object({ token: z.string().optional() }).passthrough() })).default([]),
  contexts: z.array(z.object({ name: z.string(), context: z.object({ cluster: z.string(), user: z.string().optional() }).passthrough() })).default([]),
  'current-context': z.string().optional(),
}).passthrough();

/** Renders the kubeconfig document `crossmesh kubeconfig get NAME` prints (the CA inline, base64 PEM). */
export function renderKubeconfig(ep: ApiEndpoint): string {
  const cluster: Record<string, string> = { server: ep.server };
  if (ep.ca) cluster['certificate-authority-data'] = Buffer.from(ep.ca).toString('base64');
  return stringifyYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: ep.name, cluster }],
    users: [{ name: `${ep.name}-admin`, user: { token: ep.token } }],
    contexts: [{ name: ep.name, context: { cluster: ep.name, user: `${ep.name}-admin` } }],
    'current-context': ep.name,
    preferences: {},
  });
}

/**
 * Resolves a kubeconfig document to its current context's server, token and CA. Only bearer-token
 * users are supported (that is what crossmesh issues); anything else is refused with the reason.
 * The CA is `certificate-authority-data` (base64 PEM) or `certificate-authority` (a PEM file; a
 * relative path is relative to `opts.baseDir`, the kubeconfig file's directory, default the
 * working directory).
 */
export function parseKubeconfig(text: string, where = 'kubeconfig', opts: { baseDir?: string } = {}): ApiEndpoint {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new CrossmeshError('CM_ERR_INVALID', `${where}: not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  const parsed = kubeconfigSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CrossmeshError('CM_ERR_INVALID', `${where}: ${issue.path.join('.') || '(document)'}: ${issue.message}; expected a kubeconfig as printed by \`crossmesh kubeconfig get NAME\``);
  }
  const cfg = parsed.data;
  const ctxName = cfg['current-context'] ?? cfg.contexts[0]?.name;
  const context = cfg.contexts.find((c) => c.name === ctxName)?.context;
  const cluster = cfg.clusters.find((c) => c.name === (context?.cluster ?? cfg.clusters[0].name)) ?? cfg.clusters[0];
  const user = cfg.users.find((u) => u.name === context?.user) ?? cfg.users[0];
  if (!user?.user.token) {
    throw new CrossmeshError('CM_ERR_INVALID', `${where}: the user of context "${ctxName ?? cluster.name}" has no token; crossmesh clusters authenticate with bearer tokens`);
  }
  const ca = clusterCa(cluster.cluster, `${where}: cluster "${cluster.name}"`, opts.baseDir);
  return { name: ctxName ?? cluster.name, server: cluster.cluster.server.replace(/\/$/, ''), token: user.user.token, ...(ca ? { ca } : {}) };
}

function clusterCa(c: { 'certificate-authority-data'?: string; 'certificate-authority'?: string }, where: string, baseDir = process.cwd()): string | undefined {
  let pem: string;
  if (c['certificate-authority-data'] !== undefined) {
    pem = Buffer.from(c['certificate-authority-data'], 'base64').toString('utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new CrossmeshError('CM_ERR_INVALID', `${where}: certificate-authority-data is not base64 of a PEM certificate`);
    }
    return pem;
  }
  const file = c['certificate-authority'];
  if (file === undefined) return undefined;
  const path = isAbsolute(file) ? file : resolve(baseDir, file);
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CrossmeshError('CM_ERR_INVALID', `${where}: certificate-authority ${path} can't be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new CrossmeshError('CM_ERR_INVALID', `${where}: certificate-authority ${path} holds no PEM certificate`);
  return pem;
}
