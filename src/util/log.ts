/**
 * Minimal structured-ish logger for long-running processes: one line per event on stderr,
 * with a timestamp. Never used per request on the proxy path (that is what metrics are for).
 */
function line(level: string, msg: string): void {
  process.stderr.write(`${new Date().toISOString()} ${level} ${msg}\n`);
}

export const log = {
  info: (msg: string) => line('INFO', msg),
  warn: (msg: string) => line('WARN', msg),
  error: (msg: string) => line('ERROR', msg),
  debug: (msg: string) => {
    if (process.env.CROSSMESH_DEBUG) line('DEBUG', msg);
  },
};
