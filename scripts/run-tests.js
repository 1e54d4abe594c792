#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with node's built-in test runner.
// Node 20's `--test` takes no globs, so the file list is built here. Optional args filter
// files by substring: `node scripts/run-tests.js store apiserver`.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const dist = join(root, 'dist');
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const passthrough = process.argv.slice(2).filter((a) => a.startsWith('-'));

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

// The chaos suite (test/chaos/, `npm run test:chaos`) runs only when a filter names it.
const chaos = `${join('test', 'chaos')}`;
const files = walk(dist, [])
  .filter((f) => !f.includes(`${join('dist', 'bench')}`))
  .filter((f) => filters.length === 0 || filters.some((x) => relative(dist, f).includes(x)))
  .filter((f) => !relative(dist, f).includes(chaos) || filters.some((x) => x.includes('chaos')))
  .sort();
if (files.length === 0) {
  console.error(`no test files matched ${filters.join(' ') || '(all)'} under dist/`);
  process.exit(1);
}
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...passthrough, ...files], {
  stdio: 'inherit',
  cwd: root,
  env: { ...process.env, CROSSMESH_TEST: '1' },
});
process.exit(res.status ?? 1);
