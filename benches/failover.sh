#!/usr/bin/env bash
# The failover drill, long: the two tests of tests/api/failover.rs in release
# mode, each failing over ROUNDS times in one run. Two PostgreSQL 15 clusters
# (a primary and a synchronous standby) under a temporary directory, two
# medassist instances on the multi-host URL under load from six clients; each
# round loses the primary (stopped with `pg_ctl stop -m immediate` in the
# first test, hung with SIGSTOP in the second), keeps it down 4 s, promotes
# the standby, waits for both instances to serve again, and gives the new
# primary a fresh synchronous standby on the old primary's port for the next
# round.
#
#   benches/failover.sh [ROUNDS]        # ROUNDS defaults to 5
#
# Needs PostgreSQL 15's programs in /usr/lib/postgresql/15/bin (Debian's
# postgresql-15) and, when run as root, the `postgres` user to run them as.
#
# Prints each drill's report: per round, the time until both instances said
# NOT_SERVING, the slowest settle while there was no primary, how long the
# promotion took and the time from it until both instances served and
# settled again; then writes acknowledged, calls failed, lost answers
# retried (and how many of those had landed), and `medassist verify`'s
# report on the last primary.
#
# Fails when: an instance still says SERVING 5 s after the primary went, a
# settle without a primary takes 3 s or more to fail or fails otherwise than
# UNAVAILABLE, an instance does not serve and settle within 10 s of the
# promotion, any call fails otherwise than UNAVAILABLE (a call over 5 s, or
# 8 s with a hung primary, counts as hung), an acknowledged settlement or
# reversal is missing or different, a lost answer does not settle (or
# replay) exactly once when retried, a patient's usage differs from its
# settlements or exceeds the cap, or `verify` fails.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-5}
MEDASSIST_FAILOVER_ROUNDS=$rounds cargo test --release --quiet --test api -- \
    failover:: --test-threads 1 --nocapture
