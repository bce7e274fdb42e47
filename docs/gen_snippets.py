"""MkDocs hook: text generated from the code, inserted where a page asks for it.

Markers (HTML comments, so the Markdown source still reads well):

* ``<!-- nuclib-help: segment -->``: the ``--help`` output of ``nuclib
  segment`` (any subcommand, e.g. ``zoo push``; empty for the top level),
  from ``nuclib.cli.build_parser()``;
* ``<!-- nuclib-recipe-defaults -->``: every training-recipe key with its
  default, as TOML, from ``nuclib.train.DEFAULTS``.

So the options and defaults shown can never drift from the code. Only
argparse and the recipe table are imported: nothing heavy.
"""

from __future__ import annotations

import argparse
import json
import os
import re

HELP = re.compile(r"<!--\s*nuclib-help:\s*([a-z \-]*?)\s*-->")
RECIPE = re.compile(r"<!--\s*nuclib-recipe-defaults\s*-->")


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    for word in words:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or word not in actions[0].choices:
            raise ValueError(f"nuclib has no subcommand {' '.join(words)!r} (docs marker)")
        parser = actions[0].choices[word]
    return parser


def help_text(command: str) -> str:
    """The ``--help`` output of ``nuclib <command>`` at a fixed width of 88 columns."""
    from nuclib.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "88"
    try:
        return _subparser(build_parser(), command.split()).format_help().rstrip()
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def recipe_defaults() -> str:
    """``nuclib.train.DEFAULTS`` as a TOML document (unset values as comments)."""
    from nuclib.train import DEFAULTS

    top, tables = [], []
    for key, value in DEFAULTS.items():
        if not isinstance(value, dict):
            top.append(f"{key} = {_toml_value(value)}")
            continue
        tables.append(f"\n[{key}]")
        if not value:
            tables.append("# (empty: the post-processing function's defaults, then tuned)")
        for sub, item in value.items():
            tables.append(f"# {sub} = (not set)" if item is None else f"{sub} = {_toml_value(item)}")
    return "\n".join(top + tables)


def on_page_markdown(markdown: str, **kwargs) -> str:  # noqa: ARG001  (MkDocs hook signature)
    """Replace the markers with code blocks of the generated text."""
    def command_help(match) -> str:
        words = match.group(1)
        prompt = f"$ nuclib {words} --help" if words else "$ nuclib --help"
        return f"```text\n{prompt}\n{help_text(words)}\n```"

    markdown = HELP.sub(command_help, markdown)
    return RECIPE.sub(lambda m: f"```toml\n{recipe_defaults()}\n```", markdown)
