"""TrajVLMConfig: vision tower + connector (TrajTok or patch baseline) + projector + Llama-family LLM."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

CONNECTORS = ("trajtok", "patch")
PROJECTORS = ("linear", "mlp2x_gelu")


class TrajVLMConfigError(ValueError):
    """A TrajVLMConfig whose fields cannot describe a working model."""


@strict
class TrajVLMConfig(PretrainedConfig):
    r"""Configuration of :class:`~trajvlm.model.TrajVLMForConditionalGeneration`.

    Args:
        vision_config: config of the vision tower: any AutoModel vision config (SigLIP, CLIP, ...) or
            ``ConvBackboneConfig`` (``model_type="trajvlm_conv"``, the built-in tiny tower).
        text_config: config of the LLM (any AutoModelForCausalLM of the Llama family).
        trajtok_config: ``TrajTokConfig``; required (a default is built) when ``connector="trajtok"``, unused
            (may be None) when ``connector="patch"``.
        connector: ``"trajtok"`` (trajectory tokens) or ``"patch"`` (LLaVA-Video style patch tokens).
        projector: ``"linear"`` or ``"mlp2x_gelu"``: connector width -> LLM hidden size.
        token_budget: max visual tokens per video for the TrajTok connector (caps trajectories at
            ``token_budget // q``). The patch connector spends T*h'*w' tokens whatever the budget (that is the
            baseline's cost); choose frames / ``patch_pool_stride`` to bound it.
        video_token: the placeholder string in prompts; ONE token per video.
        video_token_id: its id in the tokenizer (required).
        num_frames: frames sampled per video (uniform over the clip) by loaders that follow the config.
        fps: optional cap on the sampling rate (None = no cap).
        vision_feature_layer: which hidden state of an HF vision tower to use (None = last_hidden_state,
            e.g. -2 = penultimate layer as LLaVA does for CLIP). Ignored by the conv tower.
        vision_chunk_frames: frames pushed through the vision tower at once (bounds activation memory).
        patch_pool_stride: spatial average-pool stride of the patch connector (1 = no pooling); also used to
            report what the patch baseline would cost for a TrajTok model.
        seg_loss_weight: weight of the TrajTok segmentation loss when masks are given to forward.
    """

    model_type = "trajvlm"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="trajvlm_conv"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
        "trajtok_config": SubConfigSpec(config_class=AutoConfig, model_type="trajtok", optional=True),
    }

    vision_config: dict | PretrainedConfig | None = None
    text_config: dict | PretrainedConfig | None = None
    trajtok_config: dict | PretrainedConfig | None = None
    connector: str = "trajtok"
    projector: str = "mlp2x_gelu"
    token_budget: int = 256
    video_token: str = "<video>"
    video_token_id: int | None = None
    num_frames: int = 16
    fps: float | int | None = None
    vision_feature_layer: int | None = None
    vision_chunk_frames: int = 16
    patch_pool_stride: int = 2
    seg_loss_weight: float | int = 1.0
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.connector == "trajtok" and self.trajtok_config is None:
            from trajvlm.trajtok import TrajTokConfig

            self.trajtok_config = TrajTokConfig(feature_dim=_vision_width(self.vision_config))
        self.check()

    # ---- validation -------------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise :class:`TrajVLMConfigError` naming the offending value if the config cannot work."""
        if self.connector not in CONNECTORS:
            raise TrajVLMConfigError(f"TrajVLMConfig: unknown connector {self.connector!r}; expected one of {CONNECTORS}")
        if self.projector not in PROJECTORS:
            raise TrajVLMConfigError(f"TrajVLMConfig: unknown projector {self.projector!r}; expected one of {PROJECTORS}")
        if isinstance(self.token_budget, bool) or not isinstance(self.token_budget, int) or self.token_budget < 1:
            raise TrajVLMConfigError(f"TrajVLMConfig: token_budget must be an int >= 1, got {self.token_budget!r}")
        if self.video_token_id is None or not self.video_token:
            raise TrajVLMConfigError(
                "TrajVLMConfig: missing video token: set video_token (placeholder string) and video_token_id "
                f"(its tokenizer id); got video_token={self.video_token!r}, video_token_id={self.video_token_id!r}"
            )
        vocab = getattr(self.text_config, "vocab_size", None)
        if not 0 <= self.video_token_id or (vocab is not None and self.video_token_id >= vocab):
            raise TrajVLMConfigError(
                f"TrajVLMConfig: video_token_id={self.video_token_id} is outside the LLM vocabulary (size {vocab})"
            )
        if self.num_frames < 1:
            raise TrajVLMConfigError(f"TrajVLMConfig: num_frames must be >= 1, got {self.num_frames}")
        if self.fps is not None and not self.fps > 0:
            raise TrajVLMConfigError(f"TrajVLMConfig: fps must be > 0 or None, got {self.fps}")
        if self.vision_chunk_frames < 1:
            raise TrajVLMConfigError(f"TrajVLMConfig: vision_chunk_frames must be >= 1, got {self.vision_chunk_frames}")
        if self.patch_pool_stride < 1:
            raise TrajVLMConfigError(f"TrajVLMConfig: patch_pool_stride must be >= 1, got {self.patch_pool_stride}")
        if self.seg_loss_weight < 0:
            raise TrajVLMConfigError(f"TrajVLMConfig: seg_loss_weight must be >= 0, got {self.seg_loss_weight}")
        if self.connector == "trajtok":
            q = self.trajtok_config.tokens_per_trajectory
            if self.token_budget < q:
                raise TrajVLMConfigError(
                    f"TrajVLMConfig: token_budget={self.token_budget} is below one trajectory "
                    f"(tokens_per_trajectory={q})"
                )
            width = _vision_width(self.vision_config)
            if self.trajtok_config.feature_dim != width:
                raise TrajVLMConfigError(
                    f"TrajVLMConfig: trajtok_config.feature_dim={self.trajtok_config.feature_dim} does not match "
                    f"the vision tower width {width}"
                )

    def validate_trajvlm(self) -> None:  # run by @strict after init and at save time
        self.check()

    # ---- derived values ---------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        """The LLM hidden size (DeepSpeed's "auto" values read `config.hidden_size`)."""
        return self.text_config.hidden_size

    @property
    def vision_width(self) -> int:
        """C: width of the vision tower's grid features."""
        return _vision_width(self.vision_config)

    @property
    def image_size(self) -> int:
        """S: the square frame size the vision tower takes."""
        size = getattr(self.vision_config, "image_size", None)
        if isinstance(size, (list, tuple)):
            size = size[0]
        if not isinstance(size, int):
            raise TrajVLMConfigError(f"TrajVLMConfig: vision_config has no integer image_size ({size!r})")
        return size

    @property
    def max_trajectories(self) -> int | None:
        """Trajectory cap implied by the token budget (TrajTok connector only)."""
        if self.connector != "trajtok":
            return None
        return max(1, self.token_budget // self.trajtok_config.tokens_per_trajectory)


def _vision_width(vision_config: PretrainedConfig) -> int:
    width = getattr(vision_config, "hidden_size", None)
    if not isinstance(width, int):
        raise TrajVLMConfigError(f"TrajVLMConfig: vision_config {type(vision_config).__name__} has no hidden_size")
    return width
