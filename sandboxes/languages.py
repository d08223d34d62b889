"""The table of sandbox languages: which image runs them and how a program is compiled and run.

Each `Language` names the image tag `rlvr sandbox build` makes for it, the Debian packages that
image needs, and (for anything but Python) the file the program is written to plus the compile and
run commands, which the worker runs as ``/bin/sh -c "<compile> && exec <run>"`` in the job's
scratch dir. Python is special: the worker runs it by `exec` in a forked, preloaded interpreter
(no start-up cost), so its `run` is empty.

What this module does not do: build images (`rlvr.sandboxes.build`) or run anything
(`rlvr.sandboxes.docker`). The code verifier grades a compiled language's stdin/stdout tests
with the same table: its harness compiles once per completion and runs the binary per test.

Try it::

    >>> from rlvr.sandboxes.languages import get_language
    >>> get_language("python").image
    'rlvr-sandbox:py3'
    >>> get_language("cpp").compile
    'g++ -O2 -std=c++17 -o main main.cpp'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_PRELOAD", "LANGUAGES", "Language", "get_language"]

# Imported once by each worker so that programs' own imports of them cost nothing.
DEFAULT_PRELOAD: tuple[str, ...] = (
    "abc",
    "array",
    "bisect",
    "collections",
    "copy",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "io",
    "itertools",
    "json",
    "math",
    "mmap",
    "operator",
    "random",
    "re",
    "statistics",
    "string",
    "textwrap",
    "traceback",
    "typing",
    "unittest",
)


@dataclass(frozen=True)
class Language:
    """How one language is built into an image and run.

    name: key in `LANGUAGES`; image: the tag `rlvr sandbox build --language NAME` produces;
    packages: Debian packages installed into that image; source: the file the program is written
    to; compile: shell command run first (empty: none); run: shell command that runs the program
    (empty: Python's in-process fast path); fences: the tags of a completion's code block that
    mean this language.
    """

    name: str
    image: str
    packages: tuple[str, ...]
    source: str = "main.py"
    compile: str = ""
    run: str = ""
    fences: tuple[str, ...] = ("",)  # code-fence tags a completion may use for it ("": untagged)

    def worker_spec(self) -> dict[str, str]:
        """What the worker needs to know (empty for in-process Python)."""
        if not self.run:
            return {}
        return {"source": self.source, "compile": self.compile, "run": self.run}


LANGUAGES: dict[str, Language] = {
    "python": Language("python", "rlvr-sandbox:py3", ("python3",), fences=("python", "py", "python3", "")),
    "cpp": Language(
        "cpp",
        "rlvr-sandbox:cpp",
        ("python3", "g++", "libc6-dev"),
        source="main.cpp",
        compile="g++ -O2 -std=c++17 -o main main.cpp",
        run="./main",
        fences=("cpp", "c++", "cc", "cxx", ""),
    ),
}


def get_language(name: str) -> Language:
    """The `Language` called `name`; a clear error listing the known ones otherwise."""
    try:
        return LANGUAGES[name]
    except KeyError:
        raise ValueError(
            f"unknown sandbox language {name!r}; known: {', '.join(sorted(LANGUAGES))}"
        ) from None
