#!/usr/bin/env bash
# Install what the tests need, then run them all: the linters (ruff, mypy --strict), the
# JavaScript client's unit tests (node --test) and the Python suite (pytest: core, store against
# real redis-server, integration over real sockets, Zendesk sandbox over real HTTP, browser in
# real Chromium). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/venv.sh

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if ((${#missing[@]})); then
  apt_install "${missing[@]}"
fi
switchboard_venv "test,fast"
# redis-py ships its own types; the types-redis stubs (written for redis 4) disagree with them
# and would win, so the type check is the same in every environment only without them.
.venv/bin/python -m pip uninstall -q -y types-redis 2>/dev/null || true

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
(cd clients/js && npm ci --silent --no-audit --no-fund)
(cd clients/js && node --test)
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
