import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * A port that is free right now (bound to port 0, then released). For a child that binds it a
 * moment later (an app's APP_PORT, a redis-server): there is a small window in which another
 * process could take it, so prefer listening on port 0 yourself wherever you own the socket.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Linux's ephemeral range when /proc does not say (its default). */
const DEFAULT_EPHEMERAL: readonly [number, number] = [32768, 60999];

function ephemeralRange(): readonly [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi) && lo > 1024 && hi >= lo) return [lo, hi];
  } catch { /* not Linux, or no /proc */ }
  return DEFAULT_EPHEMERAL;
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/**
 * A free port for a child process to bind a moment later (an app's APP_PORT), chosen BELOW the
 * kernel's ephemeral range: freePort() hands out an ephemeral port and releases it, and the
 * caller's own `listen(0)` right after may get the very same one (seen in CI: a sidecar's Dapr HTTP
 * port equal to its app's port, the app failing with EADDRINUSE). A port outside the range is never
 * given to a `listen(0)`; it is checked bindable now. Falls back to freePort() if no such port is.
 */
export async function freeChildPort(host = '127.0.0.1'): Promise<number> {
  const [lo] = ephemeralRange();
  const min = Math.max(1025, lo - 12_000);
  for (let i = 0; i < 20; i++) {
    const port = min + Math.floor(Math.random() * (lo - min));
    if (await bindable(port, host)) return port;
  }
  return freePort(host);
}
