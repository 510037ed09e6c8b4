"""Stage 2: instruction-tune the LLM (full or --lora_enable) and the connector; vision tower frozen by default.

    deepspeed scripts/finetune_trajvlm.py --deepspeed scripts/zero3.json \
        --model_name_or_path <stage-1 output> --data_path <json|yaml> --video_folder <dir> --output_dir <dir> ...

All options: `python scripts/finetune_trajvlm.py --help` (trajvlm/train/arguments.py).
"""

import os
import sys

from trajvlm.train.main import main

if __name__ == "__main__":
    code = main("finetune")  # everything is saved and the process group destroyed when this returns
    sys.stdout.flush()
    sys.stderr.flush()
    # skip interpreter teardown: a rank of a finished multi-process run sometimes aborted there (rc -6, "terminate
    # called without an active exception", from a C++ thread destroyed at exit), failing the launcher's exit code
    os._exit(code)
