import { isProcessAlive } from './home.js';

/**
 * SIGTERM, then SIGKILL if the process is still there after `graceMs`. Shared by `down`
 * (lifecycle.ts), `stop` (apps.ts) and `demo`; its own module so those commands do not import
 * each other for it.
 */
export async function stopProcess(pid: number, graceMs = 5000): Promise<void> {
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isProcessAlive(pid)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}
