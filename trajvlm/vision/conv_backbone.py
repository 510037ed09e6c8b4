"""A small convolutional vision tower: the backbone of the built-in tiny TrajVLM.

It plays the role a SigLIP/CLIP tower plays at full scale: pixels in, a grid of features out.
Unlike a ViT it keeps a fine grid (stride 4 by default), which suits the trajectory segmenter on
small frames.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel


class ConvBackboneConfig(PretrainedConfig):
    model_type = "trajvlm_conv"

    def __init__(
        self,
        image_size: int = 64,
        num_channels: int = 3,
        hidden_sizes: tuple[int, ...] | list[int] = (32, 64),
        hidden_size: int = 64,
        blocks_per_stage: int = 1,
        image_mean: tuple[float, float, float] | list[float] = (0.5, 0.5, 0.5),
        image_std: tuple[float, float, float] | list[float] = (0.5, 0.5, 0.5),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if image_size < 1 or not hidden_sizes or blocks_per_stage < 1 or hidden_size < 1:
            raise ValueError(
                f"ConvBackboneConfig: bad sizes image_size={image_size}, hidden_sizes={hidden_sizes}, "
                f"blocks_per_stage={blocks_per_stage}, hidden_size={hidden_size}"
            )
        self.image_size = image_size
        self.num_channels = num_channels
        self.hidden_sizes = list(hidden_sizes)
        self.hidden_size = hidden_size  # C of the output grid
        self.blocks_per_stage = blocks_per_stage
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)

    @property
    def stride(self) -> int:
        return 2 ** len(self.hidden_sizes)


class _ResBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm1 = nn.GroupNorm(min(8, dim), dim)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm2 = nn.GroupNorm(min(8, dim), dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.gelu(self.norm1(self.conv1(x)))
        return nn.functional.gelu(x + self.norm2(self.conv2(y)))


class ConvBackbone(PreTrainedModel):
    """pixel_values (B,3,H,W) -> features (B, H/stride, W/stride, C)."""

    config_class = ConvBackboneConfig
    main_input_name = "pixel_values"
    base_model_prefix = "conv_backbone"

    def __init__(self, config: ConvBackboneConfig):
        super().__init__(config)
        layers: list[nn.Module] = []
        in_dim = config.num_channels
        for dim in config.hidden_sizes:
            layers += [nn.Conv2d(in_dim, dim, 3, stride=2, padding=1), nn.GroupNorm(min(8, dim), dim), nn.GELU()]
            layers += [_ResBlock(dim) for _ in range(config.blocks_per_stage)]
            in_dim = dim
        self.stages = nn.Sequential(*layers)
        self.out = nn.Conv2d(in_dim, config.hidden_size, 1)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.GroupNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"ConvBackbone expects pixel_values (B,{self.config.num_channels},H,W), got {tuple(pixel_values.shape)}"
            )
        x = self.out(self.stages(pixel_values))  # (B,C,h,w)
        return x.permute(0, 2, 3, 1)  # (B,h,w,C)
