"""The documentation's code that users paste: the TOML recipes of the training guide."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nuclib.train import build_loss, load_recipe

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "guide" / "training.md"
SNIPPET = re.compile(r'^--8<-- "(.+)"$')


def toml_blocks(markdown: str) -> list[str]:
    """The bodies of the ```toml blocks, with mkdocs snippet includes read from the repo."""
    blocks = re.findall(r"^```toml\n(.*?)^```", markdown, flags=re.S | re.M)
    out = []
    for block in blocks:
        include = SNIPPET.match(block.strip())
        out.append((REPO / include.group(1)).read_text() if include else block)
    return out


BLOCKS = toml_blocks(GUIDE.read_text())


def test_the_training_guide_has_its_recipes():
    assert len(BLOCKS) >= 2  # the included dsb-3class recipe and the fine-tuning one
    assert any('fine_tune_from = "dsb-3class"' in block for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_every_recipe_in_the_training_guide_loads(index, tmp_path):
    # load_recipe checks sections, keys and values but not that the folders exist.
    path = tmp_path / "recipe.toml"
    path.write_text(BLOCKS[index])
    recipe = load_recipe(path)
    assert recipe["data"]["train"]
    build_loss(recipe)  # the loss and its arguments exist too
