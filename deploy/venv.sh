# Sourced by the quick-start commands (deploy/demo.sh, tests/run.sh), from the repository root.
# Debian and Ubuntu forbid `pip install` into the system Python (PEP 668), so the project lives
# in its own virtual environment, .venv, made on first use and reused after.

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

# switchboard_venv EXTRAS: .venv with this project installed (editable) with EXTRAS.
switchboard_venv() {
  command -v python3 >/dev/null 2>&1 || apt_install python3
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "Switchboard needs Python 3.11 or newer; this python3 is $(python3 -V)" >&2
    return 1
  fi
  # Debian's python3 lacks venv's pip bootstrap until python3-venv is installed.
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$1]"
}
