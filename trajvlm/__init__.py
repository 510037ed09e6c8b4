"""TrajVLM: a video LLM whose visual tokens are object trajectories (TrajTok connector).

`import trajvlm` is light: it imports neither torch nor transformers nor any optional dependency (deepspeed,
gradio, lmms_eval, decord). It still makes saved TrajVLM folders loadable through transformers' Auto classes
(AutoConfig, AutoModelForImageTextToText, AutoModelForCausalLM, no trust_remote_code): the first time
transformers looks up one of our model types ("trajvlm", "trajvlm_conv", "trajtok"), `trajvlm.model` is
imported, and importing it registers the real classes. Public names (TrajVLMForConditionalGeneration, ...) are
imported on first access.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

_MODEL_TYPES = frozenset({"trajvlm", "trajvlm_conv", "trajtok"})
_CONFIG_AUTO = "transformers.models.auto.configuration_auto"

_EXPORTS = {
    "TrajVLMConfig": "trajvlm.model",
    "TrajVLMForConditionalGeneration": "trajvlm.model",
    "TrajVLMProcessor": "trajvlm.model",
    "VideoEncoding": "trajvlm.model",
    "from_parts": "trajvlm.model",
    "register_auto_classes": "trajvlm.model",
    "TrajVLMVideoProcessor": "trajvlm.vision.processor",
    "TrajVLMChat": "trajvlm.chat",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trajvlm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


# ---- lazy Auto registration ------------------------------------------------------------------------------------
class _LazyRegistry(dict):
    """Stands in for transformers' CONFIG_MAPPING._extra_content: asking whether one of our model types is
    registered imports trajvlm.model, which registers the real classes (into this very dict)."""

    def __contains__(self, key) -> bool:
        if key in _MODEL_TYPES and not dict.__contains__(self, key) and "trajvlm.model" not in sys.modules:
            importlib.import_module("trajvlm.model")
        return dict.__contains__(self, key)


def _install(config_auto_module) -> None:
    mapping = config_auto_module.CONFIG_MAPPING
    if not isinstance(mapping._extra_content, _LazyRegistry):
        mapping._extra_content = _LazyRegistry(mapping._extra_content)


class _InstallAfterExec(importlib.abc.Loader):
    """Wraps the loader of transformers' configuration_auto: run it, then install the lazy registry."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _install(module)

    def __getattr__(self, name):  # get_source, get_filename, is_package, ... of the real loader
        return getattr(self._loader, name)


class _ConfigAutoFinder(importlib.abc.MetaPathFinder):
    """One-shot finder: hands out configuration_auto's normal spec with its loader wrapped."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _CONFIG_AUTO:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _InstallAfterExec(spec.loader)
        return spec


if _CONFIG_AUTO in sys.modules:
    _install(sys.modules[_CONFIG_AUTO])
elif not any(isinstance(f, _ConfigAutoFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _ConfigAutoFinder())

__all__ = sorted(_EXPORTS)
