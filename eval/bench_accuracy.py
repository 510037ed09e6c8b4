r"""ShapesQA accuracy per category through lmms-eval, TrajVLM vs the patch baseline.

    OMP_NUM_THREADS=1 python eval/bench_accuracy.py --model TRAJVLM_DIR --baseline PATCH_DIR --data SHAPESQA_DIR \
        --out eval/results/accuracy.md --json eval/results/accuracy.json

Same as `trajvlm bench accuracy ...` (implementation: trajvlm/eval/bench/accuracy.py; --help lists the options).
"""

import sys

from trajvlm.eval.bench.accuracy import main

if __name__ == "__main__":
    sys.exit(main(prog="python eval/bench_accuracy.py"))
