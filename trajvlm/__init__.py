"""TrajVLM: a video LLM whose visual tokens are object trajectories (TrajTok connector).

`import trajvlm` registers the model with transformers' Auto classes (AutoConfig, AutoModelForImageTextToText,
AutoModelForCausalLM) so a saved folder loads without trust_remote_code. Optional dependencies (deepspeed,
gradio, lmms_eval, decord) are never imported here.
"""

from .model import (
    TrajVLMConfig,
    TrajVLMForConditionalGeneration,
    TrajVLMProcessor,
    VideoEncoding,
    register_auto_classes,
)
from .vision.processor import TrajVLMVideoProcessor

register_auto_classes()


def __getattr__(name: str):
    if name == "TrajVLMChat":  # lazy: the chat layer pulls in video decoding
        from .chat import TrajVLMChat

        return TrajVLMChat
    raise AttributeError(f"module 'trajvlm' has no attribute {name!r}")


__all__ = [
    "TrajVLMConfig",
    "TrajVLMForConditionalGeneration",
    "TrajVLMProcessor",
    "TrajVLMVideoProcessor",
    "VideoEncoding",
    "TrajVLMChat",
    "register_auto_classes",
]
