"""The TrajVLM model: config, modeling, processor, chat templates, construction from parts.

Importing this package registers the model with transformers' Auto classes (see trajvlm/__init__.py for how a
bare `import trajvlm` gets here lazily).
"""

from .build import BuildError, from_parts
from .chat_templates import TEMPLATES, ChatTemplate, ConversationError, get_template, normalize_conversation
from .configuration_trajvlm import TrajVLMConfig, TrajVLMConfigError
from .modeling_trajvlm import SplicedInputs, TrajVLMForConditionalGeneration, TrajVLMOutput, VideoEncoding
from .patch_connector import PatchConnector, patch_token_count
from .processing_trajvlm import (
    IGNORE_INDEX,
    NoSupervisedTokensError,
    ProcessorError,
    TemplateTokenizationError,
    TrajVLMProcessor,
    VideoPlaceholderError,
)
from .projector import Projector


def register_auto_classes() -> None:
    """Make saved TrajVLM folders (and their sub-configs) loadable through the Auto classes. Idempotent."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText

    from ..trajtok import TrajTokConfig
    from ..vision.conv_backbone import ConvBackbone, ConvBackboneConfig

    AutoConfig.register("trajvlm", TrajVLMConfig, exist_ok=True)
    AutoConfig.register("trajvlm_conv", ConvBackboneConfig, exist_ok=True)
    AutoConfig.register("trajtok", TrajTokConfig, exist_ok=True)
    AutoModel.register(ConvBackboneConfig, ConvBackbone, exist_ok=True)
    AutoModelForImageTextToText.register(TrajVLMConfig, TrajVLMForConditionalGeneration, exist_ok=True)
    AutoModelForCausalLM.register(TrajVLMConfig, TrajVLMForConditionalGeneration, exist_ok=True)


register_auto_classes()

__all__ = [
    "TrajVLMConfig",
    "TrajVLMConfigError",
    "TrajVLMForConditionalGeneration",
    "TrajVLMOutput",
    "VideoEncoding",
    "SplicedInputs",
    "TrajVLMProcessor",
    "ProcessorError",
    "TemplateTokenizationError",
    "NoSupervisedTokensError",
    "VideoPlaceholderError",
    "IGNORE_INDEX",
    "ChatTemplate",
    "ConversationError",
    "TEMPLATES",
    "get_template",
    "normalize_conversation",
    "PatchConnector",
    "patch_token_count",
    "Projector",
    "from_parts",
    "BuildError",
    "register_auto_classes",
]
