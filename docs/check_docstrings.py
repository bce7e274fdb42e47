"""List public functions and classes of nuclib whose docstrings miss a section.

The project's standard: every public function and class has a docstring with
Args, Returns, Raises and an Example. This reads the source with Griffe (no
imports, no TensorFlow) the way the API reference does, and prints one line
per object with gaps:

    python docs/check_docstrings.py            # report
    python docs/check_docstrings.py --strict   # exit 1 if anything is missing

Rules, so that the list holds only real gaps:

* Args: needed when the callable takes parameters (for a class: those of
  ``__init__``; a dataclass may document its fields under Attributes);
* Returns: needed for functions annotated with a return value other than None;
* Raises: needed when the function's own source contains ``raise``;
* Example: always.

Keras hooks (``call``, ``get_config``, ``result``, ``transform_images``, ...)
and private names are skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import griffe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from griffe_nuclib import rewrite  # noqa: E402  (the docs' own reading of "Example:")

REPO = Path(__file__).resolve().parents[1]
FRAMEWORK_HOOKS = {
    "get_config", "from_config", "call", "build", "compute_output_shape", "result",
    "update_state", "reset_state", "transform", "transform_images", "transform_labels",
    "on_epoch_end", "on_epoch_begin", "on_train_begin", "on_train_end", "get_build_config",
    "build_from_config",
}


def _sections(obj) -> set[str]:
    docstring = griffe.Docstring(rewrite(obj.docstring.value), parent=obj)
    return {section.kind.value for section in docstring.parse("google", warnings=False)}


def _parameters(obj) -> list:
    if obj.is_class:
        init = obj.members.get("__init__")
        params = init.parameters if init is not None and not init.is_alias else []
    else:
        params = obj.parameters
    return [p for p in params if p.name not in ("self", "cls")]


def gaps(obj) -> list[str]:
    """The missing sections of one function or class (or ["docstring"])."""
    if obj.docstring is None:
        return ["docstring"]
    sections = _sections(obj)
    missing = []
    documented = {"parameters", "other parameters"} | ({"attributes"} if obj.is_class else set())
    if _parameters(obj) and not sections & documented:
        missing.append("Args")
    if obj.is_function and obj.returns is not None and str(obj.returns) != "None" \
            and obj.name != "__init__" and "returns" not in sections:
        missing.append("Returns")
    try:
        source = obj.source
    except (OSError, ValueError, AttributeError):
        source = ""
    if "raise " in source and "raises" not in sections:
        missing.append("Raises")
    if "examples" not in sections:
        missing.append("Example")
    return missing


def public_objects(module):
    """Every public function, class and public method defined in ``module`` and below."""
    for name, member in module.members.items():
        if member.is_alias or name.startswith("_"):
            continue
        if member.is_module:
            yield from public_objects(member)
        elif member.is_function:
            yield member
        elif member.is_class:
            yield member
            for method_name, method in member.members.items():
                if (method.is_function and not method.is_alias and not method_name.startswith("_")
                        and method_name not in FRAMEWORK_HOOKS):
                    yield method


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when anything is missing")
    args = parser.parse_args(argv)
    package = griffe.load("nuclib", search_paths=[str(REPO)], resolve_aliases=False)
    rows = [(obj.path, gaps(obj)) for obj in public_objects(package)]
    rows = [(path, missing) for path, missing in rows if missing]
    for path, missing in rows:
        print(f"{path}: missing {', '.join(missing)}")
    print(f"{len(rows)} public objects with docstring gaps", file=sys.stderr)
    return 1 if (args.strict and rows) else 0


if __name__ == "__main__":
    sys.exit(main())
