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
