"""Griffe extension: read nuclib's docstring conventions the way a reader means them.

nuclib's docstrings are Google style with two habits Griffe's parser does not
know:

* an ``Example:`` section (singular), which Griffe would render as a prose
  admonition, turning ``>>>`` lines into block quotes; it is renamed to
  ``Examples:`` so the doctest lines render as code with their output;
* grouped arguments or attributes such as ``low, high: normalization
  percentiles.`` (the list of names may wrap onto the next line), which are
  split into one entry per name (same description) so each argument is
  matched against the signature.

Loaded by mkdocstrings (``extensions`` in ``mkdocs.yml``); the source files
are not changed.
"""

from __future__ import annotations

import re

from griffe import Extension

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.M)
_ARGS_HEADER = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params|Attributes|Keyword Args|"
                          r"Keyword Arguments|Other Parameters):\s*$")
_GROUPED = re.compile(r"^(\s*)(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)+)\s*:(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_grouped_args(text: str) -> str:
    """Rewrite ``a, b: text`` items of Args sections as one item per name."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        header = _ARGS_HEADER.match(lines[i])
        out.append(lines[i])
        i += 1
        if not header:
            continue
        section_indent = len(header.group(1))
        while i < len(lines):
            line = lines[i]
            if line.strip() and _indent(line) <= section_indent:
                break  # the section ended
            # a list of names may wrap: "a, b, c,\n        d: text"
            while (line.rstrip().endswith(",") and ":" not in line and i + 1 < len(lines)
                   and _indent(lines[i + 1]) > _indent(line)):
                i += 1
                line = line.rstrip() + " " + lines[i].strip()
            grouped = _GROUPED.match(line)
            if not grouped:
                out.append(line)
                i += 1
                continue
            item_indent = len(grouped.group(1))
            block = [line]
            i += 1
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > item_indent):
                if not lines[i].strip() and (i + 1 >= len(lines)
                                             or _indent(lines[i + 1]) <= item_indent):
                    break
                block.append(lines[i])
                i += 1
            names = [n.strip() for n in grouped.group(2).split(",")]
            for name in names:
                out.append(f"{grouped.group(1)}{name}:{grouped.group(3)}")
                out.extend(block[1:])
    return "\n".join(out)


def rewrite(text: str) -> str:
    """Apply both rewrites to a docstring's text."""
    return split_grouped_args(_EXAMPLE.sub(r"\1Examples:", text))


class NuclibDocstrings(Extension):
    """Rewrite ``Example:`` sections and grouped arguments before parsing."""

    def on_object(self, *, obj, **kwargs) -> None:  # noqa: ARG002
        docstring = getattr(obj, "docstring", None)
        if docstring is not None and not obj.is_alias:
            docstring.value = rewrite(docstring.value)
