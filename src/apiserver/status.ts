import type { ServerResponse } from 'node:http';
import { CrossmeshError, toCrossmeshError } from '../errors.js';

/** A Kubernetes `Status` object (what every API error body is). */
export interface StatusObject {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  code: number;
  details?: {
    name?: string;
    kind?: string;
    causes?: { field: string; message: string; reason: string }[];
    /** crossmesh's stable error code, for scripts. */
    errorCode?: string;
  };
}

export function statusFromError(err: unknown): StatusObject {
  const e = toCrossmeshError(err);
  const causes = e.details.problems?.map((p) => ({ field: p.field, message: p.message, reason: 'FieldValueInvalid' }));
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: e.message,
    reason: e.reason,
    code: e.status,
    details: { name: e.details.name, kind: e.details.kind, causes, errorCode: e.code },
  };
}

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

/** Turns a Status body received by a client back into the CrossmeshError it describes. */
export function errorFromStatus(httpStatus: number, body: unknown): CrossmeshError {
  const s = body as Partial<StatusObject> | undefined;
  const code = (s?.details?.errorCode as CrossmeshError['code'] | undefined) ?? codeForHttpStatus(httpStatus);
  const problems = s?.details?.causes?.map((c) => ({ field: c.field, message: c.message }));
  return new CrossmeshError(code, s?.message ?? `HTTP ${httpStatus}`, {
    name: s?.details?.name,
    kind: s?.details?.kind,
    problems,
  });
}

function codeForHttpStatus(status: number): CrossmeshError['code'] {
  switch (status) {
    case 400: return 'CM_ERR_BAD_REQUEST';
    case 401: return 'CM_ERR_UNAUTHORIZED';
    case 403: return 'CM_ERR_FORBIDDEN';
    case 404: return 'CM_ERR_NOT_FOUND';
    case 409: return 'CM_ERR_CONFLICT';
    case 410: return 'CM_ERR_GONE';
    case 413: return 'CM_ERR_TOO_LARGE';
    case 422: return 'CM_ERR_INVALID';
    case 503: return 'CM_ERR_UNAVAILABLE';
    default: return 'CM_ERR_INTERNAL';
  }
}
