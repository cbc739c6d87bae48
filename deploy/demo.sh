#!/usr/bin/env bash
# Quick start: the daemon on its embedded default (memory store, built-in Zendesk sandbox, demo
# pages, loopback only), in the project's virtual environment. Open http://127.0.0.1:8766/demo.
# Extra arguments go to `switchboard serve` (e.g. --http-port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/venv.sh
switchboard_venv fast
exec .venv/bin/switchboard serve --demo "$@"
