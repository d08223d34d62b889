#!/usr/bin/env bash
# Make the Docker sandbox usable on a fresh Debian machine, as root; safe to run again (idempotent).
#   scripts/setup_docker.sh            # install, start the engine, build rlvr-sandbox:py3
#   RLVR_SKIP_IMAGE=1 scripts/setup_docker.sh     # engine only
#   RLVR_SANDBOX_LANGUAGES=python scripts/setup_docker.sh   # images to build (default: python cpp)
# Steps, each skipped when already done:
#   1. apt-get install docker.io debootstrap bubblewrap (when one is missing; bubblewrap is for
#      LocalSandbox, the fallback on machines without Docker);
#   2. start dockerd in the background (no iptables, no default bridge: sandboxes use network none;
#      log in /var/log/rlvr-dockerd.log; overlay2, falling back to vfs) and wait until it answers;
#   3. build the images with `rlvr sandbox build --language python|cpp` (debootstrap + docker import when no registry
#      answers; the rootfs is cached in ~/.cache/rlvr/sandbox).
# It does not stop dockerd afterwards; it never touches containers or images it did not make.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
log=/var/log/rlvr-dockerd.log
t0=$(date +%s)

if [ "$(id -u)" != 0 ]; then echo "setup_docker.sh: run as root" >&2; exit 2; fi

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v docker >/dev/null || ! command -v bwrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
  "${apt[@]}" install docker.io debootstrap bubblewrap >/dev/null 2>&1 || { "${apt[@]}" update >/dev/null && "${apt[@]}" install docker.io debootstrap bubblewrap >/dev/null; }
  echo "setup_docker.sh: installed docker.io, debootstrap and bubblewrap ($(( $(date +%s) - t0 )) s)"
fi

engine_up() { docker info >/dev/null 2>&1; }
start_dockerd() {  # $1: storage driver
  nohup dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver="$1" >>"$log" 2>&1 &
  for _ in $(seq 120); do engine_up && return 0; kill -0 $! 2>/dev/null || return 1; sleep 0.5; done
  return 1
}
if ! engine_up; then
  if [ -S /var/run/docker.sock ] && ! pgrep -x dockerd >/dev/null; then rm -f /var/run/docker.sock /var/run/docker.pid; fi
  start_dockerd overlay2 || start_dockerd vfs || { echo "setup_docker.sh: dockerd did not start; see $log" >&2; tail -n 20 "$log" >&2; exit 1; }
  echo "setup_docker.sh: dockerd running ($(docker info --format '{{.Driver}}'), log $log) ($(( $(date +%s) - t0 )) s)"
fi

if [ -z "${RLVR_SKIP_IMAGE:-}" ]; then
  if [ -x "$here/.venv/bin/rlvr" ]; then
    for language in ${RLVR_SANDBOX_LANGUAGES:-python cpp}; do
      "$here/.venv/bin/rlvr" sandbox build --language "$language"
    done
  elif ! docker image inspect rlvr-sandbox:py3 >/dev/null 2>&1; then
    bash "$here/sandboxes/image/build_rootfs.sh" rlvr-sandbox:py3 python3   # no venv yet: the recipe directly
  fi
fi
echo "setup_docker.sh: ready ($(( $(date +%s) - t0 )) s)"
