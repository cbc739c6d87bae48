#!/usr/bin/env bash
# Install what the tests need, then run them all: the JavaScript client's unit tests
# (node --test) and the Python suite (pytest: core, store against real redis-server,
# integration over real sockets, Zendesk sandbox over real HTTP, browser in real Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
python3 -m pip install -q --disable-pip-version-check -e ".[test,fast]"

(cd clients/js && node --test)
python3 -m pytest -q -p no:cacheprovider "$@"
