"""``Network``: a Segmenter's model and the engine that runs it, Keras loaded only if needed.

It holds the Keras model (or any callable), or, for a model directory whose
conversion is in the engine cache, only the way to load it: then the
compiled engine runs from the cached file and Keras is never imported
(``nuclib.engines.engine_from_cache``). It builds the engine a Segmenter's
config asks for and keeps it until the engine or precision changes.

Example:
    >>> from nuclib.models import unet
    >>> net = Network(unet(depth=2, filters=4))
    >>> predictor, tiling = net.predictor("keras", "keras", "auto")
    >>> predictor is net.model, tiling
    (True, {})
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["Network"]


class Network:
    """A model, or a model directory's cached engine and a loader for its model.

    Args:
        model: a Keras model or any callable ``(N, H, W, C) -> (N, H, W, K)``;
            None for no network (preprocessing and post-processing only).
    """

    def __init__(self, model=None):
        self._model = model
        self._load = None        # from_directory with a cached engine: loads the Keras model
        self._key = None         # keras_files_digest of the directory, for the engine cache
        self._facts = None       # network_facts of the model as loaded from the directory
        self._engine = None      # ((engine, precision), engine object)
        self._inferencer = None  # (settings key, TiledInferencer)

    @property
    def model(self):
        """The Keras model (or callable); loaded now if only its directory was known."""
        if self._model is None and self._load is not None:
            self._model, self._load = self._load(), None
        return self._model

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (False: a cached engine runs without it)."""
        return self._model is not None

    @classmethod
    def from_directory(cls, directory: Path, engine: str, precision: str) -> "Network":
        """The network of a checked model directory (``nuclib.model_dir.check_model_dir``).

        With a compiled ``engine`` whose conversion of these files is cached,
        the Keras model is not loaded; otherwise it is, and for a compiled
        engine the directory's record (``nuclib.engines.remember_directory``)
        is written at once, before anything can change the weights.

        Args:
            directory: the model directory.
            engine: the engine that will run it (resolved: ``"keras"``,
                ``"openvino"`` or ``"onnxruntime"``).
            precision: the config's precision.
        """
        from nuclib import model_dir
        from nuclib.engines import engine_from_cache, network_facts, remember_directory

        net = cls()
        if engine == "keras":
            net._model = model_dir.load_keras_model(directory)
            return net
        net._key = model_dir.keras_files_digest(directory)
        cached = engine_from_cache(net._key, engine, precision)
        if cached is not None:
            net._load = lambda: model_dir.load_keras_model(directory)
            net._engine = ((engine, precision), cached)
        else:
            net._model = model_dir.load_keras_model(directory)
            net._facts = network_facts(net._model)
            remember_directory(net._key, net._facts)
        return net

    def predictor(self, engine: str, asked: str, precision: str):
        """``(predictor, tiling defaults)`` for ``engine``: the model itself, or its
        compiled engine with the Keras model's stride and receptive field (so tiles
        are laid out identically).

        Args:
            engine: the resolved engine (``nuclib.engines.resolve_engine``).
            asked: the config's engine (``"auto"`` falls back to the model for
                callables that are not Keras models).
            precision: the OpenVINO engine's precision.
        """
        from nuclib.engines import converts, engine_from_cache, make_engine

        if engine == "keras":
            return self.model, {}
        key = (engine, precision)
        if self._engine is None or self._engine[0] != key:
            compiled = None
            if not self.loaded and self._key is not None:
                compiled = engine_from_cache(self._key, engine, precision)
            if compiled is None:
                model = self.model
                if model is None or (asked == "auto" and not converts(model)):
                    return model, {}
                compiled = make_engine(model, engine, precision, facts=self._facts)
            self._engine = (key, compiled)
        compiled = self._engine[1]
        return compiled, {"multiple": compiled.multiple, "overlap": compiled.overlap,
                          "approximate_layer": compiled.approximate_layer}

    def inferencer(self, engine: str, asked: str, precision: str, **settings):
        """The ``TiledInferencer`` around ``predictor(engine, asked, precision)``, built
        again only when the predictor or the settings change.

        Args:
            engine, asked, precision: as ``predictor``.
            **settings: ``TiledInferencer`` keyword arguments; ``None`` values
                are left to its defaults.

        Example:
            >>> from nuclib.models import unet
            >>> net = Network(unet(depth=2, filters=4))
            >>> net.inferencer("keras", "keras", "auto", tile_size=64).tile_size
            (64, 64)
        """
        from nuclib.postprocess.tiling import TiledInferencer

        network, defaults = self.predictor(engine, asked, precision)
        settings = {**defaults, **{k: v for k, v in settings.items() if v is not None}}
        key = (id(network), tuple(sorted(settings.items())))
        if self._inferencer is None or self._inferencer[0] != key:
            self._inferencer = (key, TiledInferencer(network, **settings))
        return self._inferencer[1]
