/**
 * A message's time to live in seconds: the publish request's metadata `ttlInSeconds` (an integer;
 * 0 or negative = none), else the component's default. One reading for every backend and for the
 * Dapr API's check of the request (src/dapr/pubsub/cloudevents.ts).
 */
import { CrossmeshError } from '../errors.js';

/** Throws CM_ERR_BAD_REQUEST naming the value when it is not an integer. */
export function messageTtlSeconds(metadata: Readonly<Record<string, string>>, componentDefault?: number): number | undefined {
  const v = metadata.ttlInSeconds;
  if (v === undefined || v === '') return componentDefault;
  if (!/^-?\d+$/.test(v.trim())) throw new CrossmeshError('CM_ERR_BAD_REQUEST', `ttlInSeconds=${JSON.stringify(v)} is not an integer number of seconds`);
  const n = Number(v);
  return n > 0 ? n : undefined;
}
