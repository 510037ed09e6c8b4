"""lmms-eval entry point: `[project.entry-points."lmms_eval.models"] trajvlm = "trajvlm.eval.lmms_registration:manifest"`.

lmms-eval calls `manifest()` every time `lmms_eval.models` is imported (every CLI start), so this module
stays light: no torch, no trajvlm.model import. The class itself (`trajvlm.eval.lmms_model.TrajVLMLmms`)
is imported only when `--model trajvlm` is actually requested.
"""

from __future__ import annotations

MODEL_ID = "trajvlm"
SIMPLE_CLASS_PATH = "trajvlm.eval.lmms_model.TrajVLMLmms"


def manifest():
    """The `ModelManifest` lmms-eval's `ModelRegistryV2.load_entrypoint_manifests` expects."""
    from lmms_eval.models.registry_v2 import ModelManifest  # lmms_eval is importing us: already loaded

    return ModelManifest(model_id=MODEL_ID, simple_class_path=SIMPLE_CLASS_PATH)
