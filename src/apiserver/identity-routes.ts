/**
 * The cluster API's identity endpoints (paths and bodies in `identity/api.ts`): the Kubernetes
 * TokenRequest of a ServiceAccount, the trust bundle, workload certificates for service
 * accounts, and the intermediate (mesh) CA exchange a control plane drives when it claims a
 * member. Service account tokens authenticate exactly two of them (trust bundle GET,
 * workloadcertificates POST); the server refuses them everywhere else.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrossmeshError, type FieldProblem } from '../errors.js';
import type { ResourceStore } from '../store/types.js';
import type { ClusterPki } from '../identity/cluster-pki.js';
import type { SaTokens } from '../identity/sa-token.js';
import { looksLikeJwt, DEFAULT_TOKEN_SECONDS, MIN_TOKEN_SECONDS } from '../identity/sa-token.js';
import { formatWorkloadId } from '../identity/spiffe.js';
import { IDENTITY_API, INTERMEDIATE_CSR_PATH, INTERMEDIATE_PATH, TRUST_BUNDLE_PATH, WORKLOAD_CERTIFICATES_PATH, type TokenRequest, type WorkloadCertificateResponse } from '../identity/api.js';
import { readBody } from '../util/http.js';
import type { Principal } from './auth.js';
import { NAMESPACES_KEY } from './handlers.js';
import { sendJson } from './status.js';

export { IDENTITY_API };

/** What the identity endpoints run on. */
export interface IdentityBackend {
  pki: ClusterPki;
  tokens: SaTokens;
}

const SERVICE_ACCOUNTS_KEY = 'core/serviceaccounts';
const MAX_IDENTITY_BODY = 64 * 1024;
const TOKEN_PATH = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/]+)\/token\/?$/;

/** What a service account token may do, for refusals elsewhere. */
export function serviceAccountScope(p: { namespace: string; serviceAccount: string }): string {
  return `a service account token (system:serviceaccount:${p.namespace}:${p.serviceAccount}) may only GET ${TRUST_BUNDLE_PATH} and POST ${WORKLOAD_CERTIFICATES_PATH}`;
}

/**
 * The verifier the authenticator calls for a bearer token that is not the admin's: a JWT this
 * cluster issued, for a ServiceAccount that still exists (the same one: a deleted and re-created
 * account has another uid, and the old tokens stop working).
 */
export function serviceAccountVerifier(store: ResourceStore, tokens: SaTokens): (token: string) => Promise<Principal> | undefined {
  return (token) => {
    if (!looksLikeJwt(token)) return undefined;
    return (async () => {
      const p = await tokens.verify(token);
      const sa = store.get({ storageKey: SERVICE_ACCOUNTS_KEY, namespace: p.namespace, name: p.serviceAccount });
      if (!sa) throw new CrossmeshError('CM_ERR_UNAUTHORIZED', `Unauthorized: service account ${p.namespace}/${p.serviceAccount} of this token no longer exists`);
      if (p.uid !== undefined && sa.metadata.uid !== p.uid) {
        throw new CrossmeshError('CM_ERR_UNAUTHORIZED', `Unauthorized: service account ${p.namespace}/${p.serviceAccount} was deleted and created again since this token was issued; request a new token`);
      }
      return { kind: 'serviceaccount', namespace: p.namespace, serviceAccount: p.serviceAccount, uid: p.uid } as const;
    })();
  };
}

/** The {namespace, serviceAccount} of a TokenRequest path, else undefined. */
export function matchTokenRequest(path: string): { namespace: string; serviceAccount: string } | undefined {
  const m = TOKEN_PATH.exec(path);
  if (!m) return undefined;
  try {
    return { namespace: decodeURIComponent(m[1]), serviceAccount: decodeURIComponent(m[2]) };
  } catch {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `malformed percent-encoding in ${path}`);
  }
}

async function readJson(req: IncomingMessage, what: string, optional = false): Promise<unknown> {
  const raw = await readBody(req, MAX_IDENTITY_BODY);
  if (raw.length === 0) {
    if (optional) return {};
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `${what}: the request has no body; send JSON`);
  }
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new CrossmeshError('CM_ERR_BAD_REQUEST', `${what}: the body is not valid JSON (${(err as Error).message})`, { cause: err });
  }
}

/** kubectl ≥ 1.32 sends the TokenRequest as Kubernetes protobuf (protobuf-body.ts, loaded on first use). */
function isKubernetesProtobuf(req: IncomingMessage): boolean {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase() === 'application/vnd.kubernetes.protobuf';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function methodNotAllowed(method: string, path: string, allowed: string): CrossmeshError {
  return new CrossmeshError('CM_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}; allowed: ${allowed}`);
}

function adminOnly(principal: Principal, method: string, path: string): void {
  if (principal.kind !== 'admin') {
    throw new CrossmeshError('CM_ERR_FORBIDDEN', `Forbidden: ${serviceAccountScope(principal)}; ${method} ${path} needs the cluster's admin token (a kubeconfig from \`crossmesh kubeconfig get NAME\`)`);
  }
}

/**
 * POST /api/v1/namespaces/{ns}/serviceaccounts/{sa}/token (admin): a TokenRequest, answered 201
 * with the token, as Kubernetes does (`kubectl create token SA -n NS` works too).
 */
export async function handleTokenRequest(store: ResourceStore, tokens: SaTokens, req: IncomingMessage, res: ServerResponse, target: { namespace: string; serviceAccount: string }, principal: Principal): Promise<void> {
  const path = `/api/v1/namespaces/${target.namespace}/serviceaccounts/${target.serviceAccount}/token`;
  if (req.method !== 'POST') throw methodNotAllowed(req.method ?? 'GET', path, 'POST');
  adminOnly(principal, 'POST', path);
  if (!store.get({ storageKey: NAMESPACES_KEY, name: target.namespace })) {
    throw new CrossmeshError('CM_ERR_NOT_FOUND', `namespaces "${target.namespace}" not found`, { kind: 'namespaces', name: target.namespace });
  }
  const sa = store.get({ storageKey: SERVICE_ACCOUNTS_KEY, namespace: target.namespace, name: target.serviceAccount });
  if (!sa) {
    throw new CrossmeshError('CM_ERR_NOT_FOUND', `serviceaccounts "${target.serviceAccount}" not found in namespace ${target.namespace}; create it first (kind: ServiceAccount)`, { kind: 'serviceaccounts', name: target.serviceAccount });
  }
  const body = isKubernetesProtobuf(req)
    ? (await import('./protobuf-body.js')).decodeProtobufObject(await readBody(req, MAX_IDENTITY_BODY), { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest' })
    : await readJson(req, 'TokenRequest', true);
  if (!isObject(body)) throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'TokenRequest: the body must be a JSON object');
  const problems: FieldProblem[] = [];
  if (body.apiVersion !== undefined && body.apiVersion !== 'authentication.k8s.io/v1') problems.push({ field: 'apiVersion', message: `must be authentication.k8s.io/v1, got ${JSON.stringify(body.apiVersion)}` });
  if (body.kind !== undefined && body.kind !== 'TokenRequest') problems.push({ field: 'kind', message: `must be TokenRequest, got ${JSON.stringify(body.kind)}` });
  const spec = body.spec === undefined || body.spec === null ? {} : body.spec;
  let audiences: string[] | undefined;
  let expirationSeconds = DEFAULT_TOKEN_SECONDS;
  if (!isObject(spec)) {
    problems.push({ field: 'spec', message: 'must be an object' });
  } else {
    if (spec.audiences !== undefined && spec.audiences !== null) {
      if (!Array.isArray(spec.audiences) || spec.audiences.some((a) => typeof a !== 'string' || a === '')) problems.push({ field: 'spec.audiences', message: 'must be a list of non-empty strings' });
      else audiences = spec.audiences as string[];
    }
    if (spec.expirationSeconds !== undefined && spec.expirationSeconds !== null) {
      const e = spec.expirationSeconds;
      if (typeof e !== 'number' || !Number.isInteger(e)) problems.push({ field: 'spec.expirationSeconds', message: `must be a whole number of seconds, got ${JSON.stringify(e)}` });
      else if (e < MIN_TOKEN_SECONDS) problems.push({ field: 'spec.expirationSeconds', message: `may not specify a duration less than ${MIN_TOKEN_SECONDS} seconds (10 minutes), got ${e}` });
      else if (e > DEFAULT_TOKEN_SECONDS) problems.push({ field: 'spec.expirationSeconds', message: `may not specify a duration over ${DEFAULT_TOKEN_SECONDS} seconds (1 year), got ${e}` });
      else expirationSeconds = e;
    }
    if (spec.boundObjectRef !== undefined && spec.boundObjectRef !== null) problems.push({ field: 'spec.boundObjectRef', message: 'binding a token to an object is not supported by crossmesh; leave it out' });
  }
  if (problems.length > 0) {
    throw new CrossmeshError('CM_ERR_INVALID', `TokenRequest for serviceaccounts "${target.serviceAccount}" is invalid: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`, { kind: 'TokenRequest', name: target.serviceAccount, problems });
  }
  const issued = await tokens.issue({ namespace: target.namespace, serviceAccount: target.serviceAccount, uid: sa.metadata.uid, audiences, expirationSeconds });
  const answer: TokenRequest = {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    metadata: { name: target.serviceAccount, namespace: target.namespace, creationTimestamp: new Date().toISOString() },
    spec: { audiences: issued.audiences, expirationSeconds: issued.expirationSeconds, boundObjectRef: null },
    status: { token: issued.token, expirationTimestamp: issued.expirationTimestamp.toISOString().replace(/\.\d{3}Z$/, 'Z') },
  };
  sendJson(res, 201, answer);
}

/** Serves a path under /apis/identity.crossmesh.io/v1/ (the caller checked the prefix). */
export async function handleIdentity(backend: IdentityBackend, req: IncomingMessage, res: ServerResponse, path: string, principal: Principal): Promise<void> {
  const method = req.method ?? 'GET';
  const { pki } = backend;
  const p = path.replace(/\/$/, '');
  switch (p) {
    case TRUST_BUNDLE_PATH: {
      if (method !== 'GET') throw methodNotAllowed(method, p, 'GET');
      return sendJson(res, 200, pki.trustBundle());
    }
    case WORKLOAD_CERTIFICATES_PATH: {
      if (method !== 'POST') throw methodNotAllowed(method, p, 'POST');
      if (principal.kind !== 'serviceaccount') {
        throw new CrossmeshError('CM_ERR_CSR_REFUSED', 'certificate request refused: a workload certificate needs a service account token (the identity is the service account\'s), not the admin token; get one with POST /api/v1/namespaces/NS/serviceaccounts/SA/token');
      }
      const spiffeId = formatWorkloadId({ trustDomain: pki.trustDomain, namespace: principal.namespace, serviceAccount: principal.serviceAccount });
      const issued = await pki.issueWorkloadFromRequest(await readJson(req, 'workload certificate request'), spiffeId);
      const answer: WorkloadCertificateResponse = { spiffeId: issued.spiffeId, certificateChain: issued.certificateChain, roots: issued.roots, notAfter: issued.notAfter.toISOString() };
      return sendJson(res, 201, answer);
    }
    case INTERMEDIATE_CSR_PATH: {
      if (method !== 'POST') throw methodNotAllowed(method, p, 'POST');
      adminOnly(principal, method, p);
      const body = await readJson(req, 'intermediate CSR request');
      if (!isObject(body) || typeof body.trustDomain !== 'string') throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'intermediate CSR request: the body is {"trustDomain": "<the mesh\'s trust domain>"}');
      return sendJson(res, 200, { csr: await pki.createIntermediateCsr(body.trustDomain) });
    }
    case INTERMEDIATE_PATH: {
      if (method === 'GET') {
        adminOnly(principal, method, p);
        return sendJson(res, 200, pki.intermediateInfo());
      }
      if (method !== 'PUT') throw methodNotAllowed(method, p, 'GET, PUT');
      adminOnly(principal, method, p);
      const body = await readJson(req, 'intermediate');
      if (!isObject(body) || !Array.isArray(body.certificateChain)) {
        throw new CrossmeshError('CM_ERR_BAD_REQUEST', 'intermediate: the body is {"certificateChain": ["<intermediate PEM>", "<root PEM>"]}');
      }
      return sendJson(res, 200, await pki.installIntermediate(body.certificateChain as string[]));
    }
    default:
      adminOnly(principal, method, p);
      throw new CrossmeshError('CM_ERR_NOT_FOUND', `the server could not find the requested resource (${path}); the identity API serves ${TRUST_BUNDLE_PATH}, ${WORKLOAD_CERTIFICATES_PATH}, ${INTERMEDIATE_PATH} and ${INTERMEDIATE_CSR_PATH}`);
  }
}
