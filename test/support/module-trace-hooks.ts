/** Loader hooks of module-trace.ts (they run on the loader thread; same pid as the process). */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

const file = join(process.env.CROSSMESH_TRACE_MODULES!, `${process.pid}.log`);

type Resolve = (specifier: string, context: unknown, next: (s: string, c: unknown) => Promise<{ url: string }>) => Promise<{ url: string }>;

export const resolve: Resolve = async (specifier, context, next) => {
  const r = await next(specifier, context);
  if (!r.url.startsWith('node:')) appendFileSync(file, r.url + '\n');
  return r;
};
