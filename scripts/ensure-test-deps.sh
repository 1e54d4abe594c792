#!/bin/sh
# System packages the tests need: redis-server (the state.redis contract and e2e tests start a
# real one). Installed from Debian's packages when missing and we can (root + apt-get); otherwise
# the redis tests fail with a message saying how to install it.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "crossmesh: installing redis-server for the tests (apt-get)..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2 || echo "crossmesh: could not install redis-server; the redis tests will fail" >&2
  else
    echo "crossmesh: redis-server is not installed; the redis tests will fail (apt-get install -y redis-server)" >&2
  fi
fi
# kubectl: the kubectl suites (test/kubectl*.test.ts) run the real binary. Machines of this kind
# have kubectl 1.28 on PATH with 1.27 … 1.33 beside it; where none is found, Debian's
# kubernetes-client is installed so the suites run instead of failing on a missing binary.
if ! command -v kubectl >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "crossmesh: installing kubernetes-client (kubectl) for the tests (apt-get)..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client) >&2 || echo "crossmesh: could not install kubernetes-client; the kubectl tests will fail" >&2
  else
    echo "crossmesh: kubectl is not installed; the kubectl tests will fail (apt-get install -y kubernetes-client)" >&2
  fi
fi
# ip / nft / tc: the network-fault chaos suite (test/chaos/netns-faults.test.ts) builds network
# namespaces with them; installed as root when missing, else that suite says why and skips.
if ! command -v nft >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1 || ! command -v tc >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "crossmesh: installing iproute2 and nftables for the network-fault tests (apt-get)..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 nftables) >&2 || echo "crossmesh: could not install iproute2/nftables; the network-fault tests will skip" >&2
  fi
fi
