#!/usr/bin/env bash
# Rebuild the built-in default model (trajvlm/assets/default_model) from nothing, on CPU:
#   ShapesQA data -> segmenter pretraining (ConvBackbone + TrajTok segmenter, Hungarian mask loss)
#   -> more segmenter training on the fixed backbone (step 2b, --freeze-backbone: the features stay what they were)
#   -> tokenizer + small Llama + stage-1/2 data (QA answered with the option's text, " red")
#   -> the Llama's text warm-up (trajvlm.train.text_warmup --fresh-scenes: multiple-choice QA where each object
#      is ONE input vector, the sum of its word embeddings, spliced where TrajTok's one token per trajectory goes)
#   -> stage 1 (pretrain_trajvlm.py, DeepSpeed ZeRO-2): the connector learns to write those object vectors from
#      video (vision tower, segmenter and LLM frozen), on the same questions
#   -> stage 2 (finetune_trajvlm.py, DeepSpeed ZeRO-2): LLM + connector together, LLM at a low rate
#   -> held-out test accuracy -> copy into the package.
#
#   bash scripts/build_default_model.sh                          # everything, in runs/default_model
#   PARTS=runs/dm5b/parts SEGMENTER=runs/dm5b/segmenter bash scripts/build_default_model.sh
#       # reuse a tokenizer + warmed-up Llama (PARTS/llm) and a segmenter made earlier: steps 2, 3 and 3b/3c skipped
#       # (step 3 then only writes the stage-1/2 JSON files into the data folder)
#   WORK=/tmp/dm INSTALL=0 bash scripts/build_default_model.sh   # elsewhere, without replacing the shipped model
#   CONNECTOR=patch WORK=runs/patch_twin INSTALL=0 bash scripts/build_default_model.sh
#       # the patch-token twin: same data, vision tower, LLM warm-up and recipe, patch connector (2x2 pooling)
#
# The vision tower and the segmenter are frozen after step 2, so the trainer caches each video's trajectories
# (trajvlm.trajtok.cache) in TRACK_CACHE (default WORK/track_cache; a subfolder per segmenter fingerprint, so
# builds may share one): stage 1 tracks the videos it sees once, stage 2 (and any rebuild with the same
# segmenter) reads them back, and later epochs only run the trajectory encoder, projector and LLM.
# Each step is skipped when its output exists (delete the folder to redo it); SEGMENTER=DIR reuses a segmenter
# trained earlier by scripts/train_segmenter.py (DIR/backbone + DIR/trajtok), PARTS=DIR a tokenizer + Llama (DIR/llm,
# warmed up when DIR/llm/text_warmup_phase{1,2}.json exist). Knobs (environment): WORK, PARTS, SEGMENTER,
# NUM_VIDEOS, SEG_STEPS, SEG_MINUTES, SEG2_STEPS, SEG2_MINUTES, SEG2_LR, TEXT_SCENES, TEXT_STEPS, TEXT_MINUTES, TEXT_LR, TEXT2_SCENES, TEXT2_STEPS,
# TEXT_PROBE_STEPS / TEXT_PROBE_RECORDS (phase 1 learns the look-alike lookup first / keeps its questions in the mix; 0 = off), STAGE1_STEPS, STAGE1_MINUTES,
# STAGE2_STEPS, STAGE2_MINUTES, STAGE2_EXTRA_QA, STAGE2_LLM_LR, STAGE2_CONNECTOR_LR, TRACK_CACHE, BATCH, NUM_FRAMES, ROI_SIZE,
# SPLIT_COMPONENTS (1 = TrajTok splits a slot holding separate look-alike objects, 0 = off), CONNECTOR (trajtok | patch), MASTER_PORT, INSTALL (1 = copy into assets).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PY:-.venv/bin/python}
DS=${DS:-.venv/bin/deepspeed}
WORK=${WORK:-runs/default_model}
DATA=${DATA:-$WORK/shapesqa}
NUM_VIDEOS=${NUM_VIDEOS:-10000}
SEG_STEPS=${SEG_STEPS:-1500}
SEG_MINUTES=${SEG_MINUTES:-40}
SEG2_STEPS=${SEG2_STEPS:-3500}  # 2b: the segmenter trained further with the backbone frozen (0 = skip)
SEG2_MINUTES=${SEG2_MINUTES:-50}
SEG2_LR=${SEG2_LR:-4e-4}
TEXT_SCENES=${TEXT_SCENES:-15000}
TEXT_STEPS=${TEXT_STEPS:-900}
TEXT_MINUTES=${TEXT_MINUTES:-40}
TEXT_LR=${TEXT_LR:-1e-3}
TEXT2_SCENES=${TEXT2_SCENES:-6000}
TEXT2_STEPS=${TEXT2_STEPS:-300}
TEXT_PROBE_STEPS=${TEXT_PROBE_STEPS:-0}      # text_warmup --probe-steps (session 19's rebuild: 300)
TEXT_PROBE_RECORDS=${TEXT_PROBE_RECORDS:-0}  # text_warmup --probe-records (session 19's rebuild: 10000)
STAGE1_STEPS=${STAGE1_STEPS:-2000}
STAGE1_MINUTES=${STAGE1_MINUTES:-30}
STAGE2_STEPS=${STAGE2_STEPS:-6000}
STAGE2_MINUTES=${STAGE2_MINUTES:-120}
STAGE2_EXTRA_QA=${STAGE2_EXTRA_QA:-2}
STAGE2_LLM_LR=${STAGE2_LLM_LR:-1e-4}
STAGE2_CONNECTOR_LR=${STAGE2_CONNECTOR_LR:-1e-3}
BATCH=${BATCH:-16}
NUM_FRAMES=${NUM_FRAMES:-32}
ROI_SIZE=${ROI_SIZE:-4}
SPLIT_COMPONENTS=${SPLIT_COMPONENTS:-1}
CONNECTOR=${CONNECTOR:-trajtok}
MASTER_PORT=${MASTER_PORT:-29731}
INSTALL=${INSTALL:-1}
SEG=${SEGMENTER:-$WORK/segmenter}
PARTS=${PARTS:-$WORK/parts}
TRACK_CACHE=${TRACK_CACHE:-$WORK/track_cache}
mkdir -p "$WORK"
stamp() { echo "[$(date +%H:%M:%S)] $*"; }
T0=$(date +%s)

if [ ! -f "$DATA/meta.json" ]; then
  stamp "1/7 ShapesQA: $NUM_VIDEOS videos"
  $PY -m trajvlm.data.synthetic --out "$DATA" --num-videos "$NUM_VIDEOS" --seed 0 --quiet
fi

if [ ! -d "$SEG/trajtok" ]; then
  stamp "2/7 segmenter pretraining ($SEG_STEPS steps, <= $SEG_MINUTES min)"
  $PY scripts/train_segmenter.py --data "$DATA" --out "$SEG" --batch 8 --steps "$SEG_STEPS" --max-minutes "$SEG_MINUTES" \
      --eval-every 250 --val-limit 100 --save-best count_match
fi
# 2b: more segmenter training on the fixed backbone features (a segmenter given by SEGMENTER= is used as it is)
if [ -z "${SEGMENTER:-}" ] && [ "$SEG2_STEPS" -gt 0 ]; then
  if [ ! -d "$WORK/segmenter_ft/trajtok" ]; then
    stamp "2b/7 segmenter trained further, backbone frozen ($SEG2_STEPS steps, <= $SEG2_MINUTES min)"
    $PY scripts/train_segmenter.py --data "$DATA" --out "$WORK/segmenter_ft" --init "$SEG" --freeze-backbone --batch 8 \
        --steps "$SEG2_STEPS" --max-minutes "$SEG2_MINUTES" --lr "$SEG2_LR" --eval-every 250 --val-limit 100 \
        --save-best object_recall
  fi
  SEG=$WORK/segmenter_ft
fi

PARTS_ARGS=(--out "$PARTS")
if [ -d "$PARTS/llm" ]; then PARTS_ARGS=(--records-only); fi  # an existing tokenizer + Llama is kept
if [ ! -d "$PARTS/llm" ] || [ ! -f "$DATA/train_sft.json" ]; then
  stamp "3/7 tokenizer + Llama 4x256 (unless $PARTS/llm exists) + stage-1/2 data (QA answered with the option's text, $STAGE2_EXTRA_QA extra question draws per video in stage 2)"
  $PY -m trajvlm.train.default_model --data "$DATA" "${PARTS_ARGS[@]}" --answer text --no-stage2-captions \
      --stage2-lookups 0 --stage2-extra-qa "$STAGE2_EXTRA_QA"
fi

# two phases, each recorded in parts/llm/text_warmup_phase{1,2}.json (text_warmup.json = the last one)
if [ ! -f "$PARTS/llm/text_warmup_phase1.json" ]; then
  stamp "3b/7 the Llama's text warm-up, phase 1: QA over object vectors of $TEXT_SCENES new scenes, 30 % with fragments ($TEXT_STEPS steps, <= $TEXT_MINUTES min)"
  $PY -m trajvlm.train.text_warmup --data "$DATA" --llm "$PARTS/llm" --lookups 0 --fresh-scenes "$TEXT_SCENES" --spurious 0.3 \
      --answer text --steps "$TEXT_STEPS" --max-minutes "$TEXT_MINUTES" --batch 64 --lr "$TEXT_LR" --log-every 50 --val 200 \
      --probe-steps "$TEXT_PROBE_STEPS" --probe-records "$TEXT_PROBE_RECORDS"
  cp "$PARTS/llm/text_warmup.json" "$PARTS/llm/text_warmup_phase1.json"
fi
if [ ! -f "$PARTS/llm/text_warmup_phase2.json" ]; then
  stamp "3c/7 the Llama's text warm-up, phase 2: $TEXT2_SCENES more scenes, no fragments, lr 5e-4 ($TEXT2_STEPS steps, <= 11 min)"
  $PY -m trajvlm.train.text_warmup --data "$DATA" --llm "$PARTS/llm" --lookups 0 --fresh-scenes "$TEXT2_SCENES" --spurious 0 \
      --answer text --steps "$TEXT2_STEPS" --max-minutes 11 --batch 64 --lr 5e-4 --log-every 50 --val 200 --seed 1
  cp "$PARTS/llm/text_warmup.json" "$PARTS/llm/text_warmup_phase2.json"
fi

# TrajTok = the pretrained segmenter's config + box-aligned RoI features (shape) for the trajectory encoder
# + one trajectory per separate object of a slot (split_components: look-alike objects the segmenter merged)
$PY - "$SEG/trajtok/config.json" "$WORK/trajtok_config.json" "$ROI_SIZE" "$SPLIT_COMPONENTS" <<'PYEOF'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["roi_size"] = int(sys.argv[3])
cfg["split_components"] = sys.argv[4] == "1"
json.dump(cfg, open(sys.argv[2], "w"), indent=2)
PYEOF
CONNECTOR_ARGS=(--connector "$CONNECTOR")
if [ "$CONNECTOR" = trajtok ]; then
  CONNECTOR_ARGS+=(--init_trajtok "$SEG/trajtok" --trajtok_config "$WORK/trajtok_config.json" --token_budget 16
                   --freeze_segmenter True --track_cache_dir "$TRACK_CACHE")
fi

if [ ! -f "$WORK/stage1/model.safetensors" ]; then
  stamp "4/7 stage 1: pretrain the connector on the QA (vision tower, segmenter, LLM frozen), ZeRO-2"
  $DS --master_port "$MASTER_PORT" scripts/pretrain_trajvlm.py --deepspeed scripts/zero2.json \
      --vision_tower "$SEG/backbone" --llm "$PARTS/llm" "${CONNECTOR_ARGS[@]}" --conv_template llama3 \
      --data_path "$DATA/train_mcq.json" --video_folder "$DATA" --num_frames "$NUM_FRAMES" \
      --output_dir "$WORK/stage1" --max_steps "$STAGE1_STEPS" --max_train_minutes "$STAGE1_MINUTES" \
      --per_device_train_batch_size "$BATCH" --connector_lr 1e-3 --learning_rate 1e-3 --seg_loss_weight 0 --warmup_steps 20 \
      --lr_scheduler_type cosine --weight_decay 0.0 --logging_steps 10 --save_steps 1000 --save_total_limit 1 \
      --seed 0
fi

if [ ! -f "$WORK/stage2/model.safetensors" ]; then
  stamp "5/7 stage 2: finetune LLM + trajectory encoder + projector (segmenter frozen), ZeRO-2"
  EXTRA=()
  if [ -n "$STAGE2_MINUTES" ]; then EXTRA+=(--max_train_minutes "$STAGE2_MINUTES"); fi
  if [ "$CONNECTOR" = trajtok ]; then EXTRA+=(--freeze_segmenter True --track_cache_dir "$TRACK_CACHE"); fi
  $DS --master_port "$MASTER_PORT" scripts/finetune_trajvlm.py --deepspeed scripts/zero2.json \
      --model_name_or_path "$WORK/stage1" "${EXTRA[@]}" \
      --data_path "$DATA/train_sft.json" --video_folder "$DATA" --num_frames "$NUM_FRAMES" \
      --output_dir "$WORK/stage2" --max_steps "$STAGE2_STEPS" --per_device_train_batch_size "$BATCH" \
      --learning_rate "$STAGE2_LLM_LR" --connector_lr "$STAGE2_CONNECTOR_LR" --seg_loss_weight 0 --warmup_steps 30 \
      --lr_scheduler_type cosine --weight_decay 0.0 --logging_steps 25 --save_steps 200 --save_total_limit 1 \
      --seed 0
fi
FINAL=$WORK/stage2

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
