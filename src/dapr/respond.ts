/** Dapr-shaped error answers: `{"errorCode": "...", "message": "..."}` with the HTTP status. */
import type { ServerResponse } from 'node:http';

export class DaprError extends Error {
  constructor(readonly status: number, readonly errorCode: string, message: string) {
    super(message);
    this.name = 'DaprError';
  }
}

export function sendDaprError(res: ServerResponse, status: number, errorCode: string, message: string, extraHeaders?: Record<string, string>): void {
  if (res.headersSent || res.destroyed) {
    if (!res.destroyed) res.destroy();
    return;
  }
  const body = `{"errorCode":${JSON.stringify(errorCode)},"message":${JSON.stringify(message)}}`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extraHeaders }).end(body);
}
