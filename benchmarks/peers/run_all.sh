#!/usr/bin/env bash
# Run W1 in every peer installed by benchmarks/setup_peers.sh; one JSON line per peer on stdout.
#
#   bash benchmarks/peers/run_all.sh CONNECTOME.npz [extra runner args, e.g. --repeats 3 --batch 32]
#
# Peers whose environment is missing are reported on stderr and skipped. Runner stderr goes to
# benchmarks/.peers/logs/run_<peer>.err.
set -u
cd "$(dirname "$0")/../.."
conn=${1:?usage: run_all.sh CONNECTOME.npz [runner args]}
shift
mkdir -p benchmarks/.peers/logs
status=0
for peer in neurolib tvb vbjax tvboptim; do
  py=benchmarks/.peers/$peer/bin/python
  if [ ! -x "$py" ]; then
    echo "skip $peer: $py missing (run benchmarks/setup_peers.sh)" >&2
    continue
  fi
  "$py" "benchmarks/peers/run_$peer.py" --connectome "$conn" "$@" 2>"benchmarks/.peers/logs/run_$peer.err" || {
    echo "$peer failed; see benchmarks/.peers/logs/run_$peer.err" >&2
    status=1
  }
done
exit $status
