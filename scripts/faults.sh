#!/usr/bin/env bash
# The fault run of issue 12 (e2e/fault_test.go): two fmn instances on one
# database, 3,000 messages at 300 msg/s, the delivering process killed
# three times, an SMTP outage, and the PostgreSQL server crashed (kill -9
# of its postmaster) and restarted; prints its figures as `bench: fault_*`
# lines. A few minutes. The run makes a private, durable PostgreSQL cluster
# of its own (it only needs the server binaries), so the crash disturbs no
# other database.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-postgres.sh
FMN_FAULTS=1 go test -run '^TestFaultRun$' -count=1 -v -timeout 20m ./e2e/ 2>&1 | tee /dev/stderr | awk '/^bench: / { print }'
