# Shared by scripts/serve and scripts/test: Debian packages and the project's virtualenv.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ensure_packages COMMAND:PACKAGE ...: install each PACKAGE whose COMMAND is missing.
ensure_packages() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  python3 -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "Installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# ensure_venv [EXTRAS]: .venv with spacehub installed (editable), e.g. ensure_venv test.
ensure_venv() {
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${1:+[$1]}"
}

# Builds reach PyPI with the host's CA bundle (TLS-inspecting proxies; never left in images),
# unless SPACEHUB_BUILD_CA_BUNDLE is set already.
trust_host_ca() {
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    export SPACEHUB_BUILD_CA_BUNDLE="${SPACEHUB_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
  fi
}
