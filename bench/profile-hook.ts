/**
 * `npm run bench -- --profile DIR`: loaded with `NODE_OPTIONS=--import .../profile-hook.js` into
 * the cluster and sidecar processes (Node 20 refuses --cpu-prof in NODE_OPTIONS), it runs the
 * V8 CPU profiler for the process's life and writes DIR/<role>-<pid>.cpuprofile when it exits
 * (open in Chrome DevTools, or summarise with `node dist/bench/profile-top.js FILE`).
 */
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.CROSSMESH_BENCH_PROFILE_DIR;
const role = process.argv[2] === 'cluster' || process.argv[2] === 'sidecar' ? process.argv[2] : /crossmesh-sidecar\.js$/.test(process.argv[1] ?? '') ? 'sidecar' : undefined;
if (dir && role) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 200 });
  session.post('Profiler.start');
  const name = role === 'cluster' ? `cluster-${process.argv[process.argv.indexOf('--name') + 1]}` : `sidecar-${(/apps\/([^/]+)\/[^/]+\/([^/]+)\//.exec(process.argv.join(' ')) ?? []).slice(1).join('-')}`;
  let written = false;
  const dump = () => {
    if (written) return;
    written = true;
    session.post('Profiler.stop', (err, res) => {
      if (!err) writeFileSync(join(dir, `${name}-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  };
  // On SIGTERM first (a sidecar's shutdown may end in a kill before 'exit'), and on exit.
  process.prependListener('SIGTERM', dump);
  process.on('exit', dump);
}
