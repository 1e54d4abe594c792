import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Answers CONNECT (tunnel) requests with 405 and a JSON body saying why, then closes: crossmesh
 * listeners proxy plain HTTP only. Without a 'connect' listener node just drops the connection,
 * which tells a client nothing.
 */
export function refuseConnect(server: Server, what: string): void {
  const body = JSON.stringify({ errorCode: 'CM_ERR_METHOD_NOT_ALLOWED', message: `crossmesh: ${what} does not tunnel (CONNECT); send plain http:// requests` });
  const response = `HTTP/1.1 405 Method Not Allowed\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
  server.on('connect', (_req: unknown, socket: Duplex) => {
    socket.on('error', () => undefined);
    socket.end(response);
  });
}
