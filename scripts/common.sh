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

# unpack_debian_packages SUITE CACHE PACKAGE...: download PACKAGEs of another Debian release
# (e.g. trixie) from this machine's mirror through a private apt directory (CACHE/apt: the host's
# packages and sources are never touched) and unpack them with dpkg -x into CACHE/root.
unpack_debian_packages() {
  local suite=$1 cache=$2
  shift 2
  local apt=$cache/apt root=$cache/root
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$cache/debs"
  local mirror
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^(URIs:|deb) +https?:\/\/[^ ]+\/debian\/?( |$)/ {print $2; exit}' || true)
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror:-http://deb.debian.org/debian} $suite main" >"$apt/sources.list"
  local options=(-q -o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
  apt-get "${options[@]}" update >&2
  (cd "$cache/debs" && rm -f ./*.deb && apt-get "${options[@]}" download "$@" >&2)
  rm -rf "$root.new" && mkdir -p "$root.new"
  local deb
  for deb in "$cache"/debs/*.deb; do dpkg -x "$deb" "$root.new"; done
  rm -rf "$root" && mv "$root.new" "$root"
}
