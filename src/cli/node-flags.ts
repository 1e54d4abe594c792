/**
 * V8 flags of the long-running processes the CLI spawns (`run --detach` → sidecar, `up` →
 * cluster), chosen by measurement with `npm run bench` (cross-cluster closed loop, 2 cores; see
 * docs/ARCHITECTURE.md, Processes):
 *
 *   --max-semi-space-size=1   young generation semi-spaces capped at 1 MB. Under load V8 grows
 *                             them to 16 MB each, which is most of the peak RSS of a sidecar
 *                             (≈79 → ≈65 MB) and of a cluster process (≈87 → ≈67 MB); scavenges
 *                             get more frequent but each stays ~0.15 ms (cost ∝ survivors), and
 *                             the CPU per request did not change measurably (within ±2 µs).
 *
 * Not taken (same load, one run each): --max-semi-space-size=2 / 4 (sidecar ≈67 / ≈72 MB, no
 * CPU gain); --max-old-space-size=64 (1–2 MB less, but an out-of-memory crash for a sidecar
 * holding a big in-memory state store); --optimize-for-size (≤ 1 MB, 34 instead of 29–30 µs
 * per request); --single-threaded-gc, --v8-pool-size=1, MALLOC_ARENA_MAX=2 (≤ 1.5 MB, within
 * the noise); the sidecar without process metrics (no difference).
 *
 * A flag the user already sets in NODE_OPTIONS is left to NODE_OPTIONS (so it can be compared).
 */
const LEAN = ['--max-semi-space-size=1'];

function notInNodeOptions(flags: string[]): string[] {
  const given = process.env.NODE_OPTIONS ?? '';
  return flags.filter((f) => !given.includes(f.split('=')[0]));
}

/** Node/V8 flags for a sidecar process (before the script on its command line). */
export function sidecarNodeFlags(): string[] {
  return notInNodeOptions(LEAN);
}

/** Node/V8 flags for a cluster process. */
export function clusterNodeFlags(): string[] {
  return notInNodeOptions(LEAN);
}
