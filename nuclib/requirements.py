"""nuclib's installed requirements, less the ones you leave out: install without TensorFlow.

``pip install nuclib`` brings TensorFlow, the default Keras backend. On a
machine that runs Keras on JAX or PyTorch and has no use for TensorFlow (a
GPU machine with PyTorch, say), install nuclib without its dependencies,
then its requirements less TensorFlow, plus the backend's extra::

    pip install --no-deps nuclib
    python -m nuclib.requirements --without tensorflow --extra torch > requirements.txt
    pip install -r requirements.txt
    export KERAS_BACKEND=torch

The module reads only the installed package's metadata, so it runs before
any of nuclib's dependencies are installed.

Example:
    >>> any(r.startswith("keras") for r in requirements(without=["tensorflow"]))
    True
    >>> any(r.startswith("tensorflow") for r in requirements(without=["tensorflow"]))
    False
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib.metadata import requires

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(without=(), extras=()) -> list[str]:
    """nuclib's core requirements (and those of ``extras``), less the packages ``without``.

    Args:
        without: package names to leave out, e.g. ``["tensorflow"]``.
        extras: optional-dependency groups to add, e.g. ``["torch"]``.

    Returns:
        Requirement strings as in the package metadata, extras' markers removed.

    Raises:
        ValueError: an extra that nuclib does not declare.
    """
    skip = {_canonical(name) for name in without}
    wanted = {_canonical(extra) for extra in extras}
    declared, out = set(), []
    for line in requires("nuclib") or []:
        requirement, _, marker = line.partition(";")
        extra = _EXTRA.search(marker)
        if extra:
            declared.add(_canonical(extra.group(1)))
            if _canonical(extra.group(1)) not in wanted:
                continue
            # Drop the extra's own marker; keep any other condition (python_version, ...).
            marker = _EXTRA.sub("", marker).strip()
            marker = re.sub(r"^(and\s+)|(\s+and)$", "", marker).strip()
        if _canonical(_NAME.match(requirement).group(1)) in skip:
            continue
        out.append(f"{requirement.strip()}; {marker.strip()}" if marker.strip()
                   else requirement.strip())
    unknown = wanted - declared
    if unknown:
        raise ValueError(f"nuclib declares no extra {sorted(unknown)}; "
                         f"expected one of {sorted(declared)}")
    return list(dict.fromkeys(out))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nuclib.requirements",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--without", nargs="*", default=[], metavar="PACKAGE",
                        help="packages to leave out (e.g. tensorflow)")
    parser.add_argument("--extra", nargs="*", default=[], metavar="EXTRA",
                        help="extras to add (e.g. jax, torch)")
    args = parser.parse_args(argv)
    try:
        print("\n".join(requirements(args.without, args.extra)))
    except ValueError as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
