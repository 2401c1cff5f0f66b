#!/usr/bin/env bash
# Install the `sbi` peer (mackelab/sbi, PyTorch) for benchmark S1 (neural posterior estimation)
# in its own virtualenv, benchmarks/.peers/sbi (git-ignored). Never touches the project's .venv;
# neither sbi nor torch is a project dependency.
#
#   bash benchmarks/peers/setup_sbi.sh          # idempotent: an env where sbi imports is kept
#   FORCE=1 bash benchmarks/peers/setup_sbi.sh  # rebuild from scratch
#   SBI_VERSION=0.25.0 bash benchmarks/peers/setup_sbi.sh   # pin sbi (default: latest)
#
# Python 3.12 (pyenv 3.12.1, as setup_peers.sh), the CPU build of torch from
# https://download.pytorch.org/whl/cpu (plain `pip install torch` if that index is unreachable),
# then sbi from PyPI. Log: benchmarks/.peers/logs/sbi.log. Prints the installed versions;
# exits non-zero if sbi does not import afterwards.

set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
PEERS_DIR="$ROOT/benchmarks/.peers"
ENV_DIR="$PEERS_DIR/sbi"
LOG="$PEERS_DIR/logs/sbi.log"
mkdir -p "$PEERS_DIR/logs"

CHECK='import torch, sbi; from sbi.inference import NPE; from sbi.utils import BoxUniform'

versions() {
  "$ENV_DIR/bin/python" - <<'EOF'
import platform
from importlib.metadata import version
import torch
print(f"python {platform.python_version()}")
print(f"torch  {torch.__version__} (cuda: {torch.version.cuda})")
print(f"sbi    {version('sbi')}")
for dist in ("numpy", "nflows", "zuko", "pyknos"):
    try:
        print(f"{dist:6s} {version(dist)}")
    except Exception:
        pass
EOF
}

if [ "${FORCE:-0}" != 1 ] && [ -x "$ENV_DIR/bin/python" ] \
  && "$ENV_DIR/bin/python" -c "$CHECK" >/dev/null 2>&1; then
  echo "[ok]   sbi: already installed in ${ENV_DIR#"$ROOT"/}"
  versions
  exit 0
fi

if PYENV_VERSION=3.12.1 python3.12 --version >/dev/null 2>&1; then
  PY=(env PYENV_VERSION=3.12.1 python3.12)
elif command -v python3.12 >/dev/null 2>&1; then
  PY=(python3.12)
else
  echo "[FAIL] sbi: no Python 3.12 found (tried PYENV_VERSION=3.12.1 python3.12, python3.12)"
  exit 1
fi

: >"$LOG"
echo "[..]   sbi: creating ${ENV_DIR#"$ROOT"/} with $("${PY[@]}" --version) (log: ${LOG#"$ROOT"/})"
rm -rf "${ENV_DIR:?}"
"${PY[@]}" -m venv "$ENV_DIR" >>"$LOG" 2>&1 || { echo "[FAIL] sbi: venv creation failed"; exit 1; }
PIP="$ENV_DIR/bin/pip"
"$PIP" install -q --upgrade pip >>"$LOG" 2>&1

echo "[..]   sbi: installing torch (CPU build, download.pytorch.org/whl/cpu)"
echo "--- pip install torch --index-url https://download.pytorch.org/whl/cpu" >>"$LOG"
if ! "$PIP" install torch --index-url https://download.pytorch.org/whl/cpu >>"$LOG" 2>&1; then
  echo "[..]   sbi: CPU index unreachable or failed; falling back to plain 'pip install torch'"
  echo "--- pip install torch" >>"$LOG"
  "$PIP" install torch >>"$LOG" 2>&1 || {
    echo "[FAIL] sbi: torch could not be installed; last lines of ${LOG#"$ROOT"/}:"
    tail -n 5 "$LOG" | sed 's/^/         /'
    exit 1
  }
fi

SBI_SPEC="sbi${SBI_VERSION:+==$SBI_VERSION}"
echo "[..]   sbi: installing $SBI_SPEC"
echo "--- pip install $SBI_SPEC" >>"$LOG"
# torch is already satisfied, so pip keeps the CPU build
"$PIP" install "$SBI_SPEC" >>"$LOG" 2>&1 || {
  echo "[FAIL] sbi: $SBI_SPEC could not be installed; last lines of ${LOG#"$ROOT"/}:"
  tail -n 5 "$LOG" | sed 's/^/         /'
  exit 1
}

if ! "$ENV_DIR/bin/python" -c "$CHECK" >>"$LOG" 2>&1; then
  echo "[FAIL] sbi: installed but does not import; last lines of ${LOG#"$ROOT"/}:"
  tail -n 5 "$LOG" | sed 's/^/         /'
  exit 1
fi
echo "[ok]   sbi: installed in ${ENV_DIR#"$ROOT"/}"
versions
echo "run e.g.:  benchmarks/.peers/sbi/bin/python benchmarks/peers/run_sbi_npe.py --bank BANK.npz --out OUT.npz"
