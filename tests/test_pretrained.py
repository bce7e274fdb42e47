"""The bundled pretrained models: offline loading, expected counts, reproducible scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nuclib
from nuclib.data.io import read_image, read_labels
from nuclib.metrics import dsb_score, matching
from nuclib.zoo import registry

# Val images re-scored here (a few, fast); the full evaluation is benchmarks/zoo.py.
SAMPLES = {"fluorescence": "0402a81e75", "histology": "420f43d21d"}
BUNDLED = [name for name, entry in registry.load_registry().items() if entry.bundled_dir.is_dir()]


def test_the_zoo_ships_dsb_3class():
    assert "dsb-3class" in BUNDLED


@pytest.fixture(scope="module", params=BUNDLED)
def pretrained(request):
    seg = nuclib.load_pretrained(request.param, source="bundled")
    # The recorded scores are float32 numbers: bfloat16 (the default on CPUs that compute
    # it) moves the size estimate and, on the fluorescence sample, AP@0.5 by about 0.03.
    seg.config["precision"] = "f32"
    return seg


def test_loads_offline_from_the_verified_bundle(pretrained):
    entry = registry.resolve_name(pretrained.name)
    assert pretrained.name == entry.name
    assert set(entry.files) >= {"config.json", "model.weights.h5", "nuclib.json", "record.json"}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_recorded_scores_are_reproduced(pretrained, sample, sample_dir):
    (row,) = [r for r in pretrained.record["scores"]["per_image"]
              if r["name"].startswith(SAMPLES[sample])]
    image = read_image(sample_dir / f"{sample}.png")
    truth = read_labels(sample_dir / f"{sample}_labels.png")
    labels = pretrained.segment(image)
    assert labels.dtype == np.uint32 and labels.shape == truth.shape
    n = int(labels.max())
    assert n == len(np.unique(labels)) - 1, "labels are not sequential"
    # Same model, same image: counts may move by a nucleus or two across CPUs
    # (oneDNN summation order); scores by at most a few hundredths.
    assert abs(n - row["n_pred"]) <= max(2, 0.03 * row["n_pred"])
    assert matching(truth, labels, thresh=0.5).accuracy == pytest.approx(row["ap50"], abs=0.03)
    assert dsb_score([truth], [labels]) == pytest.approx(row["dsb_score"], abs=0.03)


def test_segments_a_16_bit_image_like_its_8_bit_copy(pretrained, sample_dir):
    image8 = read_image(sample_dir / "fluorescence.png")
    image16 = image8.astype(np.uint16) * 257
    a, b = pretrained.segment(image8), pretrained.segment(image16)
    assert matching(a, b, thresh=0.9).accuracy > 0.98


def test_model_card_and_config_describe_the_model(pretrained):
    folder = registry.resolve_name(pretrained.name).bundled_dir
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: keras")
    assert "## Validation scores" in card and "fluorescence" in card
    # Settings and what the model is in nuclib.json; its history apart, in record.json.
    config = json.loads((folder / "nuclib.json").read_text())
    for key in ("input_channels", "normalize", "invert", "postprocess", "tiling",
                "architecture", "files"):
        assert key in config, key
    assert not {"training", "scores"} & set(config)
    record = json.loads((folder / "record.json").read_text())
    assert {"training", "scores"} <= set(record) and record == pretrained.record
    for name, text in (("nuclib.json", config), ("record.json", record)):
        assert "/work/" not in json.dumps(text), f"machine-specific paths leaked into {name}"


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_the_nucleus_size_estimate_matches_the_annotations(sample, sample_dir):
    from nuclib.data.scale import median_diameter

    seg = nuclib.load_pretrained("dsb-3class", source="bundled")
    truth = read_labels(sample_dir / f"{sample}_labels.png")
    estimate = seg.estimate_diameter(read_image(sample_dir / f"{sample}.png"))
    assert estimate == pytest.approx(median_diameter(truth), rel=0.15)
