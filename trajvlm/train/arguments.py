"""Command-line arguments of the two training stages (parsed by `transformers.HfArgumentParser`).

Three dataclasses, as in every HF training script: what to build (model), what to read (data), how to
train (the `TrainingArguments` subclass). Both `scripts/pretrain_trajvlm.py` and
`scripts/finetune_trajvlm.py` parse the same three; the stage only changes the defaults of what is frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

STAGES = ("pretrain", "finetune")


@dataclass
class ModelArguments:
    """Where the model comes from and which parts train."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A saved TrajVLM folder (e.g. the stage-1 output). Stage 2 starts from it. "
                  "Mutually exclusive with --vision_tower/--llm."},
    )
    vision_tower: str | None = field(
        default=None,
        metadata={"help": "Vision tower: hub id or local path of an HF vision model (SigLIP, CLIP, ...) or a "
                  "saved ConvBackbone. Used with --llm to assemble a new model (stage 1)."},
    )
    llm: str | None = field(
        default=None, metadata={"help": "Llama-family causal LM (hub id or local path) with its tokenizer."}
    )
    trajtok_config: str | None = field(
        default=None,
        metadata={"help": "JSON file of TrajTokConfig fields (feature_dim is taken from the vision tower)."},
    )
    init_trajtok: str | None = field(
        default=None,
        metadata={"help": "Initialise TrajTok (and the conv backbone, when the file holds it) from a "
                  "safetensors file, e.g. the output of scripts/train_segmenter.py."},
    )
    connector: str = field(default="trajtok", metadata={"help": "'trajtok' or 'patch' (LLaVA-style baseline)."})
    projector: str = field(default="mlp2x_gelu", metadata={"help": "'linear' or 'mlp2x_gelu'."})
    conv_template: str | None = field(
        default=None, metadata={"help": "Chat template of the processor (llama3, vicuna, plain); None = LLM's own."}
    )
    token_budget: int | None = field(default=None, metadata={"help": "Max visual tokens per video."})
    pretrain_connector: str | None = field(
        default=None,
        metadata={"help": "connector.safetensors written by stage 1; loaded over the model's connector."},
    )
    tune_vision_tower: bool = field(default=False, metadata={"help": "Train the vision tower too."})
    freeze_connector: bool = field(default=False, metadata={"help": "Stage 2: keep TrajTok + projector frozen."})
    freeze_segmenter: bool = field(
        default=False,
        metadata={"help": "Keep TrajTok's segmenter frozen (e.g. pretrained by scripts/train_segmenter.py); the "
                  "trajectory encoder and projector still train."},
    )
    cache_frozen_tracks: bool = field(
        default=True,
        metadata={"help": "When the vision tower and the segmenter are both frozen and no segmentation loss is "
                  "used, cache each video's trajectories after the first epoch (skips tower + segmenter)."},
    )
    float32_tracks: bool | None = field(
        default=None,
        metadata={"help": "With --bf16: make the trajectories with float32 copies of the frozen vision tower and "
                  "segmenter, as float32 inference makes them (bf16 ones differ), and save those parts in float32. "
                  "Default: on when --bf16 and both parts are frozen (trajtok connector); True insists (an error "
                  "otherwise); False tracks in bf16. Without --bf16 it changes nothing."},
    )
    track_cache_size: int | None = field(
        default=None,
        metadata={"help": "Videos kept in memory by the track cache (LRU). Default: 20000 without "
                  "--track_cache_dir, 512 with it (the folder holds every video; reading one back costs well under "
                  "a millisecond, while tens of thousands of small in-memory entries fragment the glibc heap: "
                  "measured ~3 MB of resident memory per cached video)."},
    )
    track_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Also persist the cached trajectories here (safetensors, in a subfolder per frozen "
                  "tower+segmenter fingerprint) so later runs skip tracking from their first step."},
    )
    lora_enable: bool = field(default=False, metadata={"help": "Stage 2: train the LLM through LoRA adapters."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: str = field(
        default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
        metadata={"help": "Comma-separated LLM module names that get LoRA adapters."},
    )
    attn_implementation: str | None = field(default=None, metadata={"help": "LLM attention: sdpa, eager, ..."})


@dataclass
class DataArguments:
    """The training data (LLaVA-Video JSON or a YAML mixture) and how videos are sampled."""

    data_path: str | None = field(
        default=None, metadata={"help": "LLaVA-Video JSON file or a YAML mixture of several."}
    )
    video_folder: str | None = field(
        default=None, metadata={"help": "Root the `video` paths of the JSON are relative to."}
    )
    num_frames: int = field(default=16, metadata={"help": "Frames sampled per video (uniform)."})
    question_before_video: bool | None = field(
        default=None,
        metadata={"help": "Also put the text of the user turn with the video in front of the video (\"Q\\n<video>\\nQ\"); "
                  "saved with the processor, so inference does the same. Default: as the loaded model's processor "
                  "(off for a new one)."},
    )
    video_fps: float | None = field(default=None, metadata={"help": "Cap on the sampling rate (frames/s)."})
    use_masks: bool = field(
        default=True, metadata={"help": "Read *_mask.npz / *_graph.npz sidecars when present (segmentation loss)."}
    )
    max_bad_sample_ratio: float = field(
        default=0.01,
        metadata={"help": "Stop with an error when more than this fraction of the samples read so far had an "
                  "unreadable video (they are skipped and counted)."},
    )
    bad_sample_min_samples: int = field(
        default=100, metadata={"help": "Samples to read before --max_bad_sample_ratio is enforced."}
    )


@dataclass
class TrajVLMTrainingArguments(TrainingArguments):
    """HF TrainingArguments plus the stage, per-module learning rates and the segmentation-loss weight."""

    stage: str = field(default="finetune", metadata={"help": "'pretrain' (stage 1) or 'finetune' (stage 2)."})
    connector_lr: float | None = field(
        default=None, metadata={"help": "LR of TrajTok + projector (default: --learning_rate)."}
    )
    vision_lr: float | None = field(default=None, metadata={"help": "LR of the vision tower (default: --learning_rate)."})
    seg_loss_weight: float = field(
        default=1.0, metadata={"help": "Weight of the segmentation loss (applied when the batch carries masks)."}
    )
    option_loss_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of the option loss (trajvlm.train.option_loss): -log of the probability the answer "
                  "stays among the listed options, on multiple-choice samples answered by an option's text or letter. "
                  "0 = off."},
    )
    model_max_length: int = field(default=2048, metadata={"help": "Text tokens per sample (longer ones are cut)."})
    auto_resume: bool = field(
        default=True, metadata={"help": "Resume from the latest checkpoint-* in --output_dir when there is one."}
    )
    save_connector: bool = field(
        default=True, metadata={"help": "Also write <output_dir>/connector.safetensors (TrajTok + projector)."}
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep the video columns (must be False)."})
    max_train_minutes: float | None = field(
        default=None,
        metadata={"help": "Stop (and save) after this many minutes of training, even before --max_steps: "
                  "same-wall-clock comparisons."},
    )

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"--stage must be one of {STAGES}, got {self.stage!r}")
        if self.seg_loss_weight < 0:
            raise ValueError(f"--seg_loss_weight must be >= 0, got {self.seg_loss_weight}")
        if self.option_loss_weight < 0:
            raise ValueError(f"--option_loss_weight must be >= 0, got {self.option_loss_weight}")
        if self.max_train_minutes is not None and not self.max_train_minutes > 0:
            raise ValueError(f"--max_train_minutes must be > 0, got {self.max_train_minutes}")
        super().__post_init__()
