"""TrajTok: the trajectory tokenizer (segmenter + encoder + cross-chunk linking + losses/metrics)."""

from .config import TrajTokConfig
from .encoder import TrajEncoder
from .loss import segmentation_loss
from .metrics import matched_miou
from .segmenter import SegmenterOutput, TrajSegmenter
from .targets import SegmentationInputError, gt_label_map
from .tokenizer import TrajTok, TrajTokInputError, TrajTokOutput

__all__ = [
    "TrajTokConfig",
    "TrajTok",
    "TrajTokOutput",
    "TrajTokInputError",
    "TrajSegmenter",
    "SegmenterOutput",
    "TrajEncoder",
    "segmentation_loss",
    "matched_miou",
    "gt_label_map",
    "SegmentationInputError",
]
