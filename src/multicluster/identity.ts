/**
 * The control plane's side of a member's mesh identity (issue 14): a member's mesh CA (the
 * intermediate that issues its sidecars' workload certificates) must be signed by the control
 * plane's root, the mesh root. After a claim, on every reconnect and every few minutes the
 * control plane asks the member what it holds (GET INTERMEDIATE_PATH); a mesh CA from another
 * root (the member's own, before a join, or another control plane's), or one due for rotation
 * (2/3 of its life), is replaced: the member makes a key and a CSR (POST INTERMEDIATE_CSR_PATH;
 * the key never leaves it), the control plane signs it (`ClusterPki.signIntermediateCsr`), and
 * the member installs the chain (PUT INTERMEDIATE_PATH). A member already holding a valid mesh
 * CA from this root is left alone, so a restarted control plane issues nothing.
 *
 * The logic runs over `MemberIdentityApi` (three calls), implemented over the member's
 * `ApiClient.raw` by `memberIdentityApi()`; `MeshIdentitySync` schedules it per member.
 */
import { EventEmitter } from 'node:events';
import type { ApiClient } from '../client/api-client.js';
import { CrossmeshError, toCrossmeshError } from '../errors.js';
import { INTERMEDIATE_CSR_PATH, INTERMEDIATE_PATH, type IntermediateInfo } from '../identity/api.js';
import type { ClusterPki } from '../identity/cluster-pki.js';
import { Backoff, type BackoffOptions } from '../util/backoff.js';
import { log } from '../util/log.js';

/** The condition type on a `Cluster` resource. */
export const MESH_IDENTITY_CONDITION = 'MeshIdentity';
/** How often a member's mesh CA is re-checked while all is well (±20 % jitter). */
export const DEFAULT_IDENTITY_RECHECK_MS = 5 * 60_000;

/** What the control plane needs of its own PKI (a `ClusterPki` is one). */
export type MeshSigner = Pick<ClusterPki, 'trustDomain' | 'rootFingerprint' | 'signIntermediateCsr'>;

/** The member's identity endpoints, as the control plane uses them. */
export interface MemberIdentityApi {
  /** GET INTERMEDIATE_PATH: the member's mesh CA now. */
  info(): Promise<IntermediateInfo>;
  /** POST INTERMEDIATE_CSR_PATH {trustDomain} → the CSR of the member's new (pending) mesh CA key. */
  csr(trustDomain: string): Promise<string>;
  /** PUT INTERMEDIATE_PATH {certificateChain: [intermediate, ..., root]} → the installed mesh CA. */
  install(certificateChain: string[]): Promise<IntermediateInfo>;
}

export type MeshIdentityFailure = 'TrustDomainMismatch' | 'Unreachable' | 'Unauthorized' | 'NotSupported' | 'Refused' | 'Failed';

/** What the `MeshIdentity` condition says. */
export type MeshIdentityState =
  | { ok: true; reason: 'Issued'; message: string; info: IntermediateInfo }
  | { ok: false; reason: MeshIdentityFailure; message: string };

/** `memberIdentityApi` over a member's API client. Answers of an unexpected shape are CM_ERR_BAD_GATEWAY. */
export function memberIdentityApi(client: Pick<ApiClient, 'raw'>): MemberIdentityApi {
  return {
    info: async () => intermediateInfoOf(await client.raw('GET', INTERMEDIATE_PATH), `GET ${INTERMEDIATE_PATH}`),
    csr: async (trustDomain) => {
      const body = (await client.raw('POST', INTERMEDIATE_CSR_PATH, { trustDomain })) as { csr?: unknown } | null;
      if (typeof body?.csr !== 'string') throw badAnswer(`POST ${INTERMEDIATE_CSR_PATH}`, 'no "csr" string');
      return body.csr;
    },
    install: async (certificateChain) => intermediateInfoOf(await client.raw('PUT', INTERMEDIATE_PATH, { certificateChain }), `PUT ${INTERMEDIATE_PATH}`),
  };
}

const badAnswer = (call: string, what: string) => new CrossmeshError('CM_ERR_BAD_GATEWAY', `${call} answered ${what}; expected the intermediate info {issuer, notAfter, rootFingerprint, rotationDue}`);

function intermediateInfoOf(body: unknown, call: string): IntermediateInfo {
  const b = (body ?? {}) as Record<string, unknown>;
  for (const f of ['issuer', 'notAfter', 'rootFingerprint'] as const) {
    if (typeof b[f] !== 'string') throw badAnswer(call, `no "${f}" string`);
  }
  if (typeof b.rotationDue !== 'boolean') throw badAnswer(call, 'no "rotationDue" boolean');
  if (Number.isNaN(Date.parse(b.notAfter as string))) throw badAnswer(call, `notAfter "${b.notAfter}", not a time`);
  return b as unknown as IntermediateInfo;
}

/** The True message: the same whether the mesh CA was issued now or found valid (a restart rewrites nothing). */
function okState(clusterKey: string, info: IntermediateInfo): MeshIdentityState {
  const subject = info.subject ? `"${info.subject}" ` : '';
  return {
    ok: true,
    reason: 'Issued',
    message: `Cluster ${clusterKey}: mesh CA ${subject}issued by "${info.issuer}" (mesh root ${info.rootFingerprint}), valid until ${info.notAfter}.`,
    info,
  };
}

/** Which of the three calls failed, for the message. */
type Step = 'info' | 'csr' | 'sign' | 'install';
const STEP_TEXT: Record<Step, string> = {
  info: `reading its mesh CA (GET ${INTERMEDIATE_PATH})`,
  csr: `asking it for a mesh CA CSR (POST ${INTERMEDIATE_CSR_PATH})`,
  sign: "signing its mesh CA CSR with the control plane's root",
  install: `installing its mesh CA (PUT ${INTERMEDIATE_PATH})`,
};

/** A failure as the condition shows it. */
export function failureState(clusterKey: string, step: Step, err: unknown): MeshIdentityState & { ok: false } {
  const e = toCrossmeshError(err);
  const at = `Cluster ${clusterKey}: ${STEP_TEXT[step]}`;
  switch (e.code) {
    case 'CM_ERR_UNAVAILABLE':
    case 'CM_ERR_TIMEOUT':
    case 'CM_ERR_SHUTTING_DOWN':
      return { ok: false, reason: 'Unreachable', message: `${at}: ${e.message}` };
    case 'CM_ERR_UNAUTHORIZED':
      return { ok: false, reason: 'Unauthorized', message: `${at}: ${e.message}` };
    case 'CM_ERR_NOT_FOUND':
    case 'CM_ERR_METHOD_NOT_ALLOWED':
      if (step !== 'sign') {
        return { ok: false, reason: 'NotSupported', message: `${at}: the member's API has no mesh identity endpoints (${e.message}); it runs an older crossmesh` };
      }
      break;
    case 'CM_ERR_CA_INVALID':
    case 'CM_ERR_CSR_REFUSED':
    case 'CM_ERR_INVALID':
    case 'CM_ERR_BAD_REQUEST':
    case 'CM_ERR_FORBIDDEN':
      return { ok: false, reason: 'Refused', message: `${at} was refused: ${e.message}` };
  }
  return { ok: false, reason: 'Failed', message: `${at} failed: ${e.message}` };
}

export interface EnsureResult {
  state: MeshIdentityState;
  /** A new mesh CA was signed and installed. */
  installed: boolean;
}

/**
 * One check of member `memberName`'s mesh CA, replacing it when it is not from `signer`'s root
 * or due for rotation. Never throws: failures are a False state. `stopped` is asked between
 * the steps (a stopped connection installs nothing more).
 */
export async function ensureMeshIdentity(api: MemberIdentityApi, signer: MeshSigner, memberName: string, clusterKey: string, stopped: () => boolean = () => false): Promise<EnsureResult> {
  const fail = (step: Step, err: unknown): EnsureResult => ({ state: failureState(clusterKey, step, err), installed: false });
  let info: IntermediateInfo;
  try {
    info = await api.info();
  } catch (err) {
    return fail('info', err);
  }
  if (typeof info.trustDomain === 'string' && info.trustDomain !== signer.trustDomain) {
    return {
      state: {
        ok: false,
        reason: 'TrustDomainMismatch',
        message: `Cluster ${clusterKey} is in trust domain "${info.trustDomain}", this control plane's mesh is "${signer.trustDomain}": its mesh CA can't be issued by this mesh's root, nothing was installed; start the member with --trust-domain ${signer.trustDomain}.`,
      },
      installed: false,
    };
  }
  if (info.rootFingerprint === signer.rootFingerprint) {
    // From this root already and not due: nothing to do (a control-plane restart lands here).
    if (!info.rotationDue && Date.parse(info.notAfter) > Date.now()) return { state: okState(clusterKey, info), installed: false };
    // The member's own mesh CA under the same root (the control plane itself, or clusters given
    // the same --ca-cert): the member renews that one itself.
    if (info.joined === false) return { state: okState(clusterKey, info), installed: false };
  }
  if (stopped()) return { state: okState(clusterKey, info), installed: false };
  let csr: string;
  try {
    csr = await api.csr(signer.trustDomain);
  } catch (err) {
    return fail('csr', err);
  }
  let chain: string[];
  try {
    chain = await signer.signIntermediateCsr(csr, memberName);
  } catch (err) {
    return fail('sign', err);
  }
  if (stopped()) return { state: okState(clusterKey, info), installed: false };
  let installed: IntermediateInfo;
  try {
    installed = await api.install(chain);
  } catch (err) {
    return fail('install', err);
  }
  if (installed.rootFingerprint !== signer.rootFingerprint) {
    return fail('install', new CrossmeshError('CM_ERR_INTERNAL', `the member reports mesh root ${installed.rootFingerprint} after the install, not the control plane's ${signer.rootFingerprint}`));
  }
  return { state: okState(clusterKey, installed), installed: true };
}

interface SyncEvents {
  /** The MeshIdentity condition should change. */
  state: [MeshIdentityState];
}

export interface MeshIdentitySyncOptions {
  /** Re-check period while all is well (default 5 min, ±20 % jitter). */
  recheckMs?: number;
  /** Retry back-off after a failure (the member connection's). */
  backoff: BackoffOptions;
}

/**
 * Keeps one member's mesh CA issued by the control plane's root: a check on `trigger()` (the
 * member was claimed or came back), again every `recheckMs` while reachable, failures retried
 * with the back-off. `pause()` while the member is away. Checks never overlap; a trigger during
 * one runs another right after. Logs once per state change; `state` events only on a change.
 */
export class MeshIdentitySync extends EventEmitter<SyncEvents> {
  private readonly backoff: Backoff;
  private readonly recheckMs: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private active = false;
  private stopped = false;
  private state: MeshIdentityState | undefined;
  private logged: string | undefined;
  /** Checks completed and mesh CAs installed (status, tests). */
  readonly counts = { checks: 0, installs: 0 };

  constructor(private readonly api: MemberIdentityApi, private readonly signer: MeshSigner, private readonly memberName: string, private readonly clusterKey: string, opts: MeshIdentitySyncOptions) {
    super();
    this.backoff = new Backoff(opts.backoff);
    this.recheckMs = opts.recheckMs ?? DEFAULT_IDENTITY_RECHECK_MS;
  }

  /** The last reported state (undefined before the first check ends). */
  get current(): MeshIdentityState | undefined {
    return this.state;
  }

  /** Check now (after a claim, on a reconnect); the periodic re-check follows from it. */
  trigger(): void {
    if (this.stopped) return;
    this.active = true;
    this.clearTimer();
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.run().finally(() => {
      this.running = undefined;
      if (this.again && !this.stopped) {
        this.again = false;
        this.trigger();
      }
    });
  }

  /** The member is away: no checks until the next `trigger()`. */
  pause(): void {
    this.active = false;
    this.again = false;
    this.clearTimer();
  }

  stop(): void {
    this.stopped = true;
    this.pause();
  }

  /** Resolves when no check is running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async run(): Promise<void> {
    const { state, installed } = await ensureMeshIdentity(this.api, this.signer, this.memberName, this.clusterKey, () => this.stopped);
    if (this.stopped) return;
    this.counts.checks++;
    if (installed) this.counts.installs++;
    if (state.ok) {
      this.backoff.reset();
      this.logOnce(state, installed);
      this.report(state);
      this.scheduleNext(this.recheckMs * (0.8 + 0.4 * Math.random()));
      return;
    }
    this.logOnce(state, false);
    // A member away keeps the mesh CA it was last seen holding: the condition stays as it was
    // (Managed says it is away); anything else is shown.
    if (!(state.reason === 'Unreachable' && this.state?.ok && Date.parse(this.state.info.notAfter) > Date.now())) this.report(state);
    this.scheduleNext(this.backoff.next());
  }

  private scheduleNext(ms: number): void {
    if (this.stopped || !this.active || this.again) return;
    this.clearTimer();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.trigger();
    }, ms);
    this.timer.unref();
  }

  private report(s: MeshIdentityState): void {
    const prev = this.state;
    if (prev && prev.ok === s.ok && prev.reason === s.reason && prev.message === s.message) return;
    this.state = s;
    this.emit('state', s);
  }

  private logOnce(s: MeshIdentityState, installed: boolean): void {
    const key = `${s.ok}|${s.reason}|${s.message}`;
    if (key === this.logged && !installed) return;
    this.logged = key;
    if (s.ok) log.info(`multicluster: ${installed ? 'installed a new' : 'checked the'} mesh CA of ${this.memberName}: ${s.message}`);
    else log.warn(`multicluster: mesh identity of ${this.memberName}: ${s.message} (${s.reason}; retrying with back-off)`);
  }
}
