"""napari sample data: the images bundled in ``nuclib.samples``, one command each.

Each function returns napari's layer data tuples, ``[(data, kwargs, "image")]``.

Example:
    >>> data, kwargs, kind = fluorescence()[0]
    >>> data.shape, kwargs["name"], kind
    ((260, 347), 'fluorescence', 'image')
"""

from __future__ import annotations

from nuclib.samples import SAMPLES, sample_image

__all__ = ["fluorescence", "fluorescence_large", "histology", "brightfield", "layer_data"]


def layer_data(name: str) -> list[tuple]:
    """The napari layer data tuple of one sample image (``rgb`` for colour ones).

    Args:
        name: one of ``nuclib.samples.SAMPLES``.

    Returns:
        ``[(image, {"name", "rgb", "metadata"}, "image")]``.

    Example:
        >>> layer_data("histology")[0][1]["rgb"]
        True
    """
    image = sample_image(name)
    kwargs = {"name": name, "rgb": image.ndim == 3,
              "metadata": {"source": SAMPLES[name][1], "license": "CC0-1.0"}}
    return [(image, kwargs, "image")]


def _sample_command(name: str, description: str):
    """A napari sample-data command (a module-level function) for one bundled image.

    npe2 resolves ``python_name`` to a module attribute, so each sample needs
    its own named callable; they differ only in the image they load.
    """
    def load() -> list[tuple]:
        return layer_data(name)

    load.__name__ = load.__qualname__ = name
    load.__doc__ = (f"The {description}.\n\n    Returns:\n        napari's layer data tuples "
                    f"(see ``layer_data``).\n\n    Example:\n        >>> {name}()[0][1]['name']\n"
                    f"        '{name}'\n    ")
    return load


fluorescence = _sample_command("fluorescence", "347 x 260 fluorescence sample")
fluorescence_large = _sample_command("fluorescence_large", "696 x 520 fluorescence sample")
histology = _sample_command("histology", "320 x 256 H&E-like histology sample (RGB)")
brightfield = _sample_command("brightfield", "1024 x 1024 bright-field sample")
