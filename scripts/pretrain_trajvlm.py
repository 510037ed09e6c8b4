"""Stage 1: align the connector (TrajTok + projector) with vision tower and LLM frozen.

    deepspeed scripts/pretrain_trajvlm.py --deepspeed scripts/zero2.json \
        --vision_tower <id|path> --llm <id|path> --data_path <json|yaml> --video_folder <dir> --output_dir <dir> ...

All options: `python scripts/pretrain_trajvlm.py --help` (trajvlm/train/arguments.py).
"""

import os
import sys

from trajvlm.train.main import main

if __name__ == "__main__":
    code = main("pretrain")  # everything is saved and the process group destroyed when this returns
    sys.stdout.flush()
    sys.stderr.flush()
    # skip interpreter teardown: a rank of a finished multi-process run sometimes aborted there (rc -6, "terminate
    # called without an active exception", from a C++ thread destroyed at exit), failing the launcher's exit code
    os._exit(code)
