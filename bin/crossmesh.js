#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript under dist/ (npm run build).
import('../dist/src/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli/main.js')) {
    console.error('crossmesh: not built yet. Run `npm run build` (or `npm test` / `npm run up`, which build first).');
    process.exit(1);
  }
  throw err;
});
