#!/usr/bin/env bash
# Install the peer simulators for the W1 benchmark, each in its own virtualenv under
# benchmarks/.peers/<env> (git-ignored). Never touches the project's .venv; none of these
# packages is a project dependency.
#
#   bash benchmarks/setup_peers.sh            # all peers
#   bash benchmarks/setup_peers.sh tvb vbjax  # some of them
#   FORCE=1 bash benchmarks/setup_peers.sh    # rebuild the environments from scratch
#
# Idempotent: an environment whose peer already imports at the pinned version is left alone.
# Pins: benchmarks/peers/requirements/<env>.txt is the full `pip freeze` of the environment
# that worked (Python 3.11); if that exact set cannot be installed, the script falls back to
# the pinned peer alone (letting pip pick its dependencies), then to Python 3.12.
# Prints one status line per peer and a summary; exits non-zero only if no peer installed.

set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PEERS_DIR="$ROOT/benchmarks/.peers"
REQ_DIR="$ROOT/benchmarks/peers/requirements"
LOG_DIR="$PEERS_DIR/logs"
mkdir -p "$PEERS_DIR" "$LOG_DIR"

# env | pip distribution | pinned version | import check | extra packages (undeclared deps)
PEERS=(
  "neurolib|neurolib|0.6.2|from neurolib.models.hopf import HopfModel|"
  "tvb|tvb-library|2.10.0|from tvb.simulator import simulator, models|"
  "vbjax|vbjax|0.0.19|import vbjax|tqdm==4.70.1"   # vbjax imports tqdm without declaring it
  "tvboptim|tvboptim|0.4.0|from tvboptim.experimental.network_dynamics import Network|"
)

want=("$@")
selected() {
  [ ${#want[@]} -eq 0 ] && return 0
  local w
  for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

# Interpreters to try, in order: Python 3.11, then 3.12 (pyenv).
python_for() {
  case "$1" in
    3.11) command -v python3.11 >/dev/null 2>&1 && { echo python3.11; return; }
          python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null && echo python3 ;;
    3.12) if PYENV_VERSION=3.12.1 python3.12 --version >/dev/null 2>&1; then echo "env PYENV_VERSION=3.12.1 python3.12";
          elif command -v python3.12 >/dev/null 2>&1; then echo python3.12; fi ;;
  esac
}

installed_ok() {  # env dist version check
  local py="$PEERS_DIR/$1/bin/python"
  [ -x "$py" ] || return 1
  "$py" - "$2" "$3" "$4" >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
dist, pin, check = sys.argv[1:4]
assert version(dist) == pin, version(dist)
exec(check)
EOF
}

try_install() {  # env dist version check extra pyver log
  local env=$1 dist=$2 ver=$3 check=$4 extra=$5 pyver=$6 log=$7
  local py
  py=$(python_for "$pyver")
  if [ -z "$py" ]; then echo "no Python $pyver found" >>"$log"; return 1; fi
  rm -rf "${PEERS_DIR:?}/$env"
  $py -m venv "$PEERS_DIR/$env" >>"$log" 2>&1 || return 1
  local pip="$PEERS_DIR/$env/bin/pip"
  "$pip" install -q --upgrade pip >>"$log" 2>&1
  # 1) the exact set that worked (only meaningful on the Python it was frozen with)
  if [ "$pyver" = 3.11 ] && [ -f "$REQ_DIR/$env.txt" ]; then
    echo "--- pip install -r $REQ_DIR/$env.txt" >>"$log"
    if "$pip" install -r "$REQ_DIR/$env.txt" >>"$log" 2>&1 && installed_ok "$env" "$dist" "$ver" "$check"; then
      return 0
    fi
  fi
  # 2) the pinned peer, dependencies left to pip
  echo "--- pip install $dist==$ver $extra" >>"$log"
  # shellcheck disable=SC2086
  "$pip" install "$dist==$ver" $extra >>"$log" 2>&1 && installed_ok "$env" "$dist" "$ver" "$check"
}

declare -a ok_list=() fail_list=()
for entry in "${PEERS[@]}"; do
  IFS='|' read -r env dist ver check extra <<<"$entry"
  selected "$env" || continue
  log="$LOG_DIR/$env.log"
  if [ "${FORCE:-0}" != 1 ] && installed_ok "$env" "$dist" "$ver" "$check"; then
    pyv=$("$PEERS_DIR/$env/bin/python" -c 'import platform; print(platform.python_version())')
    echo "[ok]   $env: $dist==$ver already installed (Python $pyv)"
    ok_list+=("$env")
    continue
  fi
  : >"$log"
  done_ok=0
  for pyver in 3.11 3.12; do
    echo "[..]   $env: installing $dist==$ver on Python $pyver (log: ${log#"$ROOT"/})"
    if try_install "$env" "$dist" "$ver" "$check" "$extra" "$pyver" "$log"; then
      pyv=$("$PEERS_DIR/$env/bin/python" -c 'import platform; print(platform.python_version())')
      echo "[ok]   $env: $dist==$ver installed (Python $pyv)"
      ok_list+=("$env"); done_ok=1; break
    fi
  done
  if [ $done_ok = 0 ]; then
    echo "[FAIL] $env: $dist==$ver could not be installed on Python 3.11 or 3.12; last lines of $log:"
    grep -v '^WARNING: Location' "$log" | tail -n 5 | sed 's/^/         /'
    rm -rf "${PEERS_DIR:?}/$env"
    fail_list+=("$env")
  fi
done

echo
echo "installed: ${ok_list[*]:-none}"
echo "failed:    ${fail_list[*]:-none}"
echo "run e.g.:  benchmarks/.peers/<env>/bin/python benchmarks/peers/run_<env>.py --connectome C.npz --duration-ms 10000 --repeats 3"
[ ${#ok_list[@]} -gt 0 ]
