#!/usr/bin/env bash
# Makes sure Debian's rabbitmq-server is on this machine: the AMQP tests and
# benchmarks start private nodes from it (consumer/amqptest), each with its
# own name, ports, data folder and Erlang cookie under a temporary folder,
# so no broker needs to run. Installs the package when possible (without
# starting the system's node), else says what to do.
set -euo pipefail
have() { [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && { command -v epmd >/dev/null 2>&1 || ls /usr/lib/erlang/erts-*/bin/epmd >/dev/null 2>&1; }; }
have && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "rabbitmq-server not found: installing Debian's rabbitmq-server package" >&2
  export DEBIAN_FRONTEND=noninteractive
  # The tests run their own nodes; keep the package's from starting.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
  apt-get install -y -qq --no-install-recommends rabbitmq-server >&2 ||
    { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends rabbitmq-server >&2; }
  have && exit 0
fi
echo "rabbitmq-server (an AMQP broker) is missing; the AMQP tests start private nodes from it." >&2
echo "Install it, e.g. 'sudo apt-get install rabbitmq-server' (no node needs to run)." >&2
exit 1
