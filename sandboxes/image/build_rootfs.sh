#!/usr/bin/env bash
# Build the rlvr sandbox image without a registry: a debootstrap minbase rootfs + `docker import`.
#
#   sandboxes/image/build_rootfs.sh [TAG] [PACKAGES] [CACHE_DIR]
#   sandboxes/image/build_rootfs.sh rlvr-sandbox:py3 python3 ~/.cache/rlvr/sandbox
#
# Needs root, debootstrap and a reachable Debian mirror (the one apt is configured with is used;
# override with RLVR_DEBIAN_MIRROR). The trimmed rootfs tarball is cached in CACHE_DIR as
# rootfs-<suite>-<packages>.tar, so a rebuild after `docker rmi` takes seconds. What it does not
# do: pull anything from a container registry (use the Dockerfile next to this script for that).
set -euo pipefail
tag=${1:-rlvr-sandbox:py3}
packages=${2:-python3}
cache=${3:-${XDG_CACHE_HOME:-$HOME/.cache}/rlvr/sandbox}
suite=${RLVR_DEBIAN_SUITE:-bookworm}

mirror=${RLVR_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # First Debian main-archive URI apt knows (deb822 .sources or one-line .list), else the default.
  mirror=$(grep -hoE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
           | awk '{print $2}' | head -n1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi

mkdir -p "$cache"
tarball="$cache/rootfs-$suite-$(echo "$packages" | tr ', ' '__').tar"
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "build_rootfs.sh: debootstrap not installed (apt-get install debootstrap)" >&2; exit 2; }
  work=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "build_rootfs.sh: debootstrap --variant=minbase $suite ($packages) from $mirror" >&2
  debootstrap --variant=minbase --include="$packages" "$suite" "$work/root" "$mirror" >"$work/log" 2>&1 \
    || { tail -n 30 "$work/log" >&2; exit 1; }
  r="$work/root"
  # Trim: package caches, docs, locales; and no setuid/setgid bits (no-new-privileges is on anyway).
  rm -rf "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* "$r"/usr/share/doc/* "$r"/usr/share/man/* \
         "$r"/usr/share/info/* "$r"/usr/share/locale/* "$r"/var/log/* "$r"/debootstrap
  find "$r" -xdev -perm /6000 -type f -exec chmod ug-s {} +
  mkdir -p "$r/scratch" "$r/io"
  chmod 1777 "$r/scratch"
  tar --numeric-owner -C "$r" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
fi
docker import \
  -c 'ENV LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin' -c 'WORKDIR /scratch' -c 'CMD ["python3"]' \
  -m "rlvr sandbox ($packages, debootstrap $suite)" "$tarball" "$tag" >/dev/null
echo "build_rootfs.sh: built $tag from $tarball ($(du -h "$tarball" | cut -f1))" >&2
