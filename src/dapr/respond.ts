/** Dapr-shaped error answers: `{"errorCode": "...", "message": "..."}` with the HTTP status. */
import type { ServerResponse } from 'node:http';
import type { DaprError } from '../errors.js';

export { DaprError, daprError } from '../errors.js';

/** Answers `err` (a catalogue entry, see src/errors/dapr.ts); a response already started is cut off instead. */
export function sendDaprError(res: ServerResponse, err: DaprError, extraHeaders?: Record<string, string>): void {
  if (res.headersSent || res.destroyed) {
    if (!res.destroyed) res.destroy();
    return;
  }
  const body = `{"errorCode":${JSON.stringify(err.errorCode)},"message":${JSON.stringify(err.message)}}`;
  res.writeHead(err.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extraHeaders }).end(body);
}
