# Shared by scripts/run and scripts/test: create .venv and install the project
# when it is missing or pyproject.toml or the lock file changed since the last install.
# Usage: . scripts/_venv.sh EXTRAS   (EXTRAS: "" or "[dev]")
# Every dependency comes pinned, with its hashes, from the lock file (requirements.lock,
# or requirements-dev.lock with the dev tools); `scripts/lock` regenerates both.
set -euo pipefail
extras="${1:-}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python 3.11 or newer is needed (found: $("$python" --version 2>&1))" >&2
  echo "       set PYTHON=/path/to/python3.11 to choose another interpreter" >&2
  exit 1
fi
lock="requirements${extras:+-dev}.lock"
stamp=".venv/.installed${extras:+-dev}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv || {
    echo "error: could not create .venv (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
  }
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  echo "installing the project into .venv (pinned by $lock) ..."
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet --require-hashes -r "$lock"
  .venv/bin/python -m pip install --quiet --no-deps -e .
  touch "$stamp"
fi
