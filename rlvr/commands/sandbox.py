"""rlvr sandbox: build the code-sandbox image, or check that the sandbox works here (doctor).

    rlvr sandbox build [--language python] [--method auto|dockerfile|debootstrap] [--rebuild]
    rlvr sandbox doctor [--size N] [--jobs 200]

``build`` makes the image of the language's row in `rlvr.sandboxes.languages` (``rlvr-sandbox:py3``
for Python): from `sandboxes/image/Dockerfile` when a registry is reachable, else from a
debootstrap rootfs with ``docker import`` (needs root). ``doctor`` checks the engine, the image and
the isolation in effect, runs a containment self-test and a throughput probe, and prints a table.

Exit codes: 0 success, 1 a failed build or check, 2 bad usage. Neither starts a Docker engine:
``scripts/setup_docker.sh`` does that (as root).
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rlvr sandbox build`` and ``rlvr sandbox doctor``."""
    sub = parser.add_subparsers(dest="sandbox_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="build the sandbox image (Dockerfile or debootstrap)")
    build.add_argument("--language", default="python", help="row of the language table (python, cpp)")
    build.add_argument(
        "--method",
        default="auto",
        choices=["auto", "dockerfile", "debootstrap"],
        help="auto: the Dockerfile when a registry answers, else debootstrap + docker import",
    )
    build.add_argument(
        "--tag", default=None, help="image tag (default: the language's, e.g. rlvr-sandbox:py3)"
    )
    build.add_argument("--rebuild", action="store_true", help="build even if the image exists")
    build.add_argument(
        "--cache-dir", default=None, help="where the rootfs tarball is cached (~/.cache/rlvr/sandbox)"
    )
    build.add_argument(
        "--docker-host", default=None, help="engine URL (default: DOCKER_HOST or the local socket)"
    )
    doc = sub.add_parser("doctor", help="check engine, image, isolation, containment and throughput")
    doc.add_argument("--language", default="python", help="row of the language table")
    doc.add_argument("--image", default=None, help="image to check (default: the language's)")
    doc.add_argument(
        "--size", type=int, default=None, help="containers for the throughput probe (default: cores)"
    )
    doc.add_argument(
        "--jobs", type=int, default=200, help="HumanEval-style jobs in the throughput probe (0: skip)"
    )
    doc.add_argument(
        "--docker-host", default=None, help="engine URL (default: DOCKER_HOST or the local socket)"
    )


def run(args: argparse.Namespace) -> int:
    from rlvr.io import InputError
    from rlvr.sandboxes.languages import LANGUAGES

    if args.language not in LANGUAGES:
        raise InputError(
            f"--language: unknown sandbox language {args.language!r}; known: {', '.join(LANGUAGES)}"
        )
    if args.sandbox_command == "build":
        import subprocess

        from rlvr.sandboxes.build import build_image

        try:
            build_image(
                args.language,
                method=args.method,
                tag=args.tag,
                rebuild=args.rebuild,
                cache_dir=args.cache_dir,
                docker_host=args.docker_host,
            )
        except (RuntimeError, subprocess.CalledProcessError) as e:
            print(f"rlvr sandbox build: failed: {e}")
            return 1
        return 0
    from rlvr.sandboxes.doctor import doctor

    if args.size is not None and args.size < 1 or args.jobs < 0:
        raise InputError("--size must be >= 1 and --jobs >= 0")
    return doctor(
        args.language, size=args.size, jobs=args.jobs, image=args.image, docker_host=args.docker_host
    )
