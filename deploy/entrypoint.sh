#!/bin/sh
# The platform image's entry: decide whether the local runtime sandboxes apps with bubblewrap,
# then run the command (spacehub serve).
#
# bwrap needs user namespaces and a fresh /proc, which Docker's default seccomp profile and its
# masked /proc paths refuse: `docker run --security-opt seccomp=unconfined --security-opt
# systempaths=unconfined` (deploy/compose.yaml sets both) lets it. Swarm services cannot set
# those options. The runtime uses bwrap whenever it is on PATH, so it is put there only when it
# works here. APPS_SANDBOX: auto (default: sandbox when possible, else say so and run apps as the
# platform's user), required (refuse to start without it), off.
set -eu
sandbox=/opt/sandbox/bin
works() {
  "$sandbox/bwrap" --ro-bind / / --unshare-pid --unshare-ipc --unshare-uts --proc /proc \
    --dev /dev true 2>/dev/null
}
case "${APPS_SANDBOX:-auto}" in
  off) ;;
  auto | required)
    if works; then
      PATH=$PATH:$sandbox
      export PATH
      echo "apps are sandboxed by bubblewrap" >&2
    elif [ "${APPS_SANDBOX:-auto}" = required ]; then
      echo "APPS_SANDBOX=required, but bubblewrap cannot make namespaces in this container:" \
        "run it with --security-opt seccomp=unconfined --security-opt systempaths=unconfined" >&2
      exit 1
    else
      echo "bubblewrap cannot make namespaces in this container: apps run unsandboxed, as the" \
        "platform's user (run it with --security-opt seccomp=unconfined --security-opt" \
        "systempaths=unconfined to sandbox them)" >&2
    fi
    ;;
  *)
    echo "APPS_SANDBOX must be auto, required or off, not ${APPS_SANDBOX}" >&2
    exit 2
    ;;
esac
exec "$@"
