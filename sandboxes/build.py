"""Build the sandbox image (`rlvr sandbox build`): from the Dockerfile, or from debootstrap.

Two recipes, same result (python3 on Debian bookworm, an empty /scratch and /io, nothing setuid):

- ``dockerfile``: ``docker build`` of `sandboxes/image/Dockerfile` (``FROM debian:bookworm-slim``).
  Needs a reachable container registry.
- ``debootstrap``: `sandboxes/image/build_rootfs.sh`, a ``debootstrap --variant=minbase`` rootfs from
  the Debian mirror apt uses, trimmed and ``docker import``-ed. Needs root and debootstrap, no
  registry. The rootfs tarball is cached (``~/.cache/rlvr/sandbox``), so a rebuild takes seconds.

``method="auto"`` uses the Dockerfile when Docker Hub answers within 3 s, else debootstrap. The
language table (`rlvr.sandboxes.languages`) decides the tag and the packages.

What this module does not do: start a Docker engine (scripts/setup_docker.sh does) or check the
image works (`rlvr sandbox doctor` does).

Try it::

    $ rlvr sandbox build                         # rlvr-sandbox:py3, auto method
    $ rlvr sandbox build --language cpp --method debootstrap
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from rlvr.sandboxes.languages import get_language

__all__ = ["DEFAULT_CACHE", "IMAGE_DIR", "build_image", "image_exists", "registry_reachable"]

IMAGE_DIR = Path(__file__).with_name("image")
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rlvr" / "sandbox"
METHODS = ("auto", "dockerfile", "debootstrap")


def registry_reachable(url: str = "https://registry-1.docker.io/v2/", timeout_s: float = 3.0) -> bool:
    """True when the registry answers at all (401 counts: it is there, it wants a token)."""
    try:
        urllib.request.urlopen(url, timeout=timeout_s)
        return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def image_exists(tag: str, docker_host: str | None = None) -> bool:
    import docker

    client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def build_image(
    language: str = "python",
    *,
    method: str = "auto",
    tag: str | None = None,
    rebuild: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    docker_host: str | None = None,
    say: Callable[[str], None] = print,
) -> str:
    """Build the image for `language` unless it exists (or `rebuild`); return its tag."""
    if method not in METHODS:
        raise ValueError(f"sandbox build: method must be one of {', '.join(METHODS)}, not {method!r}")
    lang = get_language(language)
    tag = tag or lang.image
    if not rebuild and image_exists(tag, docker_host):
        say(f"{tag}: already built (use --rebuild to build again)")
        return tag
    if method == "auto":
        method = "dockerfile" if registry_reachable() else "debootstrap"
        say(f"{tag}: registry {'reachable' if method == 'dockerfile' else 'unreachable'}: using {method}")
    if method == "dockerfile":
        _build_dockerfile(tag, lang.packages, docker_host, say)
    else:
        _build_debootstrap(tag, lang.packages, Path(cache_dir or DEFAULT_CACHE), docker_host, say)
    say(f"{tag}: built")
    return tag


def _build_dockerfile(tag: str, packages: tuple[str, ...], docker_host: str | None, say: Callable) -> None:
    import docker

    client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
    say(f"{tag}: docker build {IMAGE_DIR} (PACKAGES={' '.join(packages)})")
    client.images.build(path=str(IMAGE_DIR), tag=tag, buildargs={"PACKAGES": " ".join(packages)}, rm=True)


def _build_debootstrap(
    tag: str, packages: tuple[str, ...], cache: Path, docker_host: str | None, say: Callable
) -> None:
    cached = cache / f"rootfs-bookworm-{'_'.join(packages)}.tar"  # named as build_rootfs.sh names it
    if shutil.which("debootstrap") is None and not cached.exists():
        raise RuntimeError(
            "sandbox build: debootstrap is not installed (apt-get install debootstrap), "
            "and no registry is reachable for the Dockerfile; see docs/sandboxes.md"
        )
    if os.geteuid() != 0:
        raise RuntimeError("sandbox build: the debootstrap recipe needs root (sudo rlvr sandbox build)")
    env = dict(os.environ)
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    script = IMAGE_DIR / "build_rootfs.sh"
    say(f"{tag}: {script} (debootstrap, cache {cache})")
    subprocess.run(["bash", str(script), tag, ",".join(packages), str(cache)], check=True, env=env)
