"""Stage 1: align the connector (TrajTok + projector) with vision tower and LLM frozen.

    deepspeed scripts/pretrain_trajvlm.py --deepspeed scripts/zero2.json \
        --vision_tower <id|path> --llm <id|path> --data_path <json|yaml> --video_folder <dir> --output_dir <dir> ...

All options: `python scripts/pretrain_trajvlm.py --help` (trajvlm/train/arguments.py).
"""

import sys

from trajvlm.train.main import main

if __name__ == "__main__":
    sys.exit(main("pretrain"))
