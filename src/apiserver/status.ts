import type { ServerResponse } from 'node:http';
import { statusFromError } from '../api/wire.js';

// Writing API answers. The Status body itself (and its conversion) is the wire format in src/api/wire.ts.

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  const status = statusFromError(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status.code, status);
}
