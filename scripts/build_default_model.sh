#!/usr/bin/env bash
# Rebuild the built-in default model (trajvlm/assets/default_model) from nothing, on CPU:
#   ShapesQA data -> segmenter pretraining (ConvBackbone + TrajTok segmenter) -> tokenizer + small Llama
#   -> stage 1 (pretrain_trajvlm.py, DeepSpeed ZeRO-2) -> stage 2 (finetune_trajvlm.py, DeepSpeed ZeRO-2,
#   then continued from its output)
#   -> held-out test accuracy per category -> copy the model into trajvlm/assets/default_model.
#
#   bash scripts/build_default_model.sh                 # everything, in runs/default_model
#   WORK=/tmp/dm INSTALL=0 bash scripts/build_default_model.sh   # elsewhere, without replacing the shipped model
#
# Each step is skipped when its output exists (delete the folder to redo it); the training stages resume
# from their latest checkpoint-* when interrupted. Knobs (environment): WORK, NUM_VIDEOS, SEG_STEPS,
# SEG_MINUTES, STAGE1_STEPS, STAGE2_STEPS, STAGE2B_STEPS (0 = no continuation), BATCH, NUM_FRAMES, MASTER_PORT, INSTALL (1 = copy into assets).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PY:-.venv/bin/python}
DS=${DS:-.venv/bin/deepspeed}
WORK=${WORK:-runs/default_model}
NUM_VIDEOS=${NUM_VIDEOS:-2500}
SEG_STEPS=${SEG_STEPS:-600}
SEG_MINUTES=${SEG_MINUTES:-10}
STAGE1_STEPS=${STAGE1_STEPS:-150}
STAGE2_STEPS=${STAGE2_STEPS:-600}
STAGE2B_STEPS=${STAGE2B_STEPS:-0}
BATCH=${BATCH:-8}
NUM_FRAMES=${NUM_FRAMES:-16}
MASTER_PORT=${MASTER_PORT:-29731}
INSTALL=${INSTALL:-1}
DATA=$WORK/shapesqa
mkdir -p "$WORK"
stamp() { echo "[$(date +%H:%M:%S)] $*"; }
T0=$(date +%s)

if [ ! -f "$DATA/meta.json" ]; then
  stamp "1/7 ShapesQA: $NUM_VIDEOS videos"
  $PY -m trajvlm.data.synthetic --out "$DATA" --num-videos "$NUM_VIDEOS" --seed 0 --quiet
fi

if [ ! -d "$WORK/segmenter/trajtok" ]; then
  stamp "2/7 segmenter pretraining ($SEG_STEPS steps, <= $SEG_MINUTES min)"
  $PY scripts/train_segmenter.py --data "$DATA" --out "$WORK/segmenter" --steps "$SEG_STEPS" \
      --max-minutes "$SEG_MINUTES" --val-limit 40
fi

if [ ! -d "$WORK/parts/llm" ] || [ ! -f "$DATA/train_multiturn.json" ]; then
  # + DATA/train_multiturn.json: per video, its caption request and all its questions as one multi-turn
  #   conversation (2 shuffled copies), the stage-2 data
  stamp "3/7 tokenizer + Llama 4x256, multi-turn stage-2 data"
  $PY -m trajvlm.train.default_model --data "$DATA" --out "$WORK/parts"
fi

if [ ! -f "$WORK/stage1/model.safetensors" ]; then
  stamp "4/7 stage 1: pretrain connector (vision + LLM frozen), ZeRO-2"
  $DS --master_port "$MASTER_PORT" scripts/pretrain_trajvlm.py --deepspeed scripts/zero2.json \
      --vision_tower "$WORK/segmenter/backbone" --llm "$WORK/parts/llm" --init_trajtok "$WORK/segmenter/trajtok" \
      --conv_template llama3 --token_budget 16 \
      --data_path "$DATA/train_captions.json" --video_folder "$DATA" --num_frames "$NUM_FRAMES" \
      --output_dir "$WORK/stage1" --max_steps "$STAGE1_STEPS" --per_device_train_batch_size "$BATCH" \
      --connector_lr 1e-3 --learning_rate 1e-3 --seg_loss_weight 1.0 --warmup_steps 20 \
      --lr_scheduler_type cosine --weight_decay 0.0 --logging_steps 10 --save_steps 50 --save_total_limit 1 \
      --seed 0
fi

if [ ! -f "$WORK/stage2/model.safetensors" ]; then
  stamp "5/7 stage 2: finetune LLM + connector, ZeRO-2"
  $DS --master_port "$MASTER_PORT" scripts/finetune_trajvlm.py --deepspeed scripts/zero2.json \
      --model_name_or_path "$WORK/stage1" \
      --data_path "$DATA/train_multiturn.json" --video_folder "$DATA" --num_frames "$NUM_FRAMES" \
      --output_dir "$WORK/stage2" --max_steps "$STAGE2_STEPS" --per_device_train_batch_size "$BATCH" \
      --learning_rate 1e-3 --connector_lr 1e-3 --seg_loss_weight 0.5 --warmup_steps 50 \
      --lr_scheduler_type cosine --weight_decay 0.0 --logging_steps 25 --save_steps 100 --save_total_limit 1 \
      --seed 0
fi

FINAL=$WORK/stage2
if [ "$STAGE2B_STEPS" -gt 0 ]; then
  # stage 2 continued: a second finetune run from the stage-2 output (fresh warmup + cosine schedule)
  if [ ! -f "$WORK/stage2b/model.safetensors" ]; then
    stamp "5b/7 stage 2 continued ($STAGE2B_STEPS steps), ZeRO-2"
    $DS --master_port "$MASTER_PORT" scripts/finetune_trajvlm.py --deepspeed scripts/zero2.json \
        --model_name_or_path "$WORK/stage2" \
        --data_path "$DATA/train_multiturn.json" --video_folder "$DATA" --num_frames "$NUM_FRAMES" \
        --output_dir "$WORK/stage2b" --max_steps "$STAGE2B_STEPS" --per_device_train_batch_size "$BATCH" \
        --learning_rate 1e-3 --connector_lr 1e-3 --seg_loss_weight 0.5 --warmup_steps 20 \
        --lr_scheduler_type cosine --weight_decay 0.0 --logging_steps 25 --save_steps 100 --save_total_limit 1 \
        --seed 1
  fi
  FINAL=$WORK/stage2b
fi

stamp "6/7 held-out ShapesQA test accuracy (greedy)"
$PY -m trajvlm.train.evaluate --model "$FINAL" --data "$DATA" --split test --json "$WORK/eval_test.json" \
    | tee "$WORK/eval_test.md"

if [ "$INSTALL" = 1 ]; then
  stamp "7/7 install into trajvlm/assets/default_model"
  DEST=trajvlm/assets/default_model
  rm -rf "$DEST" && mkdir -p "$DEST"
  for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json \
           special_tokens_map.json video_processor_config.json trajvlm_processor_config.json; do
    if [ -f "$FINAL/$f" ]; then cp "$FINAL/$f" "$DEST/"; fi
  done
  du -sh "$DEST"
fi
stamp "done in $(( ($(date +%s) - T0) / 60 )) min"
