#!/usr/bin/env node
// Thin launcher of the sidecar process (what `crossmesh run --detach` spawns): only the sidecar's
// modules, not the CLI. Compiled TypeScript under dist/ (npm run build).
import('../dist/src/sidecar/main.js').then((m) => m.main(process.argv.slice(2))).catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/sidecar/main.js')) {
    console.error('crossmesh-sidecar: not built yet. Run `npm run build`.');
    process.exit(1);
  }
  throw err;
});
