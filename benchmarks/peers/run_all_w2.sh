#!/usr/bin/env bash
# Run W2 (Hopf network -> BOLD, TR 0.72 s, 60 s) in every peer installed by
# benchmarks/setup_peers.sh; one JSON line per peer on stdout.
#
#   bash benchmarks/peers/run_all_w2.sh CONNECTOME.npz [extra runner args, e.g. --repeats 3 --G 0.4]
#
# Peers whose environment is missing are reported on stderr and skipped. Runner stderr goes to
# benchmarks/.peers/logs/run_<peer>_w2.err.
set -u
cd "$(dirname "$0")/../.."
conn=${1:?usage: run_all_w2.sh CONNECTOME.npz [runner args]}
shift
mkdir -p benchmarks/.peers/logs
status=0
for peer in neurolib tvb vbjax tvboptim; do
  py=benchmarks/.peers/$peer/bin/python
  if [ ! -x "$py" ]; then
    echo "skip $peer: $py missing (run benchmarks/setup_peers.sh)" >&2
    continue
  fi
  "$py" "benchmarks/peers/run_${peer}_w2.py" --connectome "$conn" "$@" 2>"benchmarks/.peers/logs/run_${peer}_w2.err" || {
    echo "$peer failed; see benchmarks/.peers/logs/run_${peer}_w2.err" >&2
    status=1
  }
done
exit $status
