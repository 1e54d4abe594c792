/**
 * `node --import dist/test/support/module-trace.js ...` with CROSSMESH_TRACE_MODULES=<dir>: every
 * module URL the process resolves through the ESM loader (its own files and the packages it
 * imports, but not the CommonJS files a package requires internally) is appended to
 * `<dir>/<pid>.log`, one per line. Passed down in NODE_OPTIONS, it tells which modules a real
 * sidecar or CLI process loaded (test/lean.test.ts).
 */
import { register } from 'node:module';

if (process.env.CROSSMESH_TRACE_MODULES) register(new URL('./module-trace-hooks.js', import.meta.url));
