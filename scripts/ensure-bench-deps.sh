#!/bin/sh
# System packages the full benchmark (`npm run bench`) uses: wrk (the closed-loop load generator,
# written in C so that it does not take a whole core from the system under test the way a Node
# load generator does on 2 cores) and nginx-light (the nginx chains the mesh is compared with).
# Installed from Debian's packages when missing and we can (root + apt-get); otherwise the bench
# falls back to autocannon for the closed loop and skips the nginx rows, and says so.
# Never fails: the bench runs with whatever is there.
missing=""
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "crossmesh bench: installing$missing (apt-get)..." >&2
  # Debian's nginx package starts the nginx service on install where it can (port 80): not wanted
  # here; policy-rc.d answering 101 stops that (a container usually has one already).
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy=1
  fi
  log="${TMPDIR:-/tmp}/crossmesh-bench-apt.log"
  # shellcheck disable=SC2086
  if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing) >"$log" 2>&1; then
    echo "crossmesh bench: installed$missing" >&2
  else
    tail -n 5 "$log" >&2
    echo "crossmesh bench: could not install$missing (log: $log); the bench falls back (autocannon for the closed loop / nginx rows skipped)" >&2
  fi
  [ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
else
  echo "crossmesh bench:$missing not installed and not root with apt-get: the bench falls back (autocannon for the closed loop / nginx rows skipped); apt-get install -y$missing" >&2
fi
exit 0
