"""Visual tokens vs video length (static / busy ShapesQA, Big Buck Bunny), TrajVLM vs patch, + log-log plot.

    OMP_NUM_THREADS=1 python eval/bench_tokens.py --out eval/results/tokens_vs_frames.md --plot eval/results/tokens_vs_frames.png

Same as `trajvlm bench tokens ...` (implementation: trajvlm/eval/bench/tokens.py; --help lists the options).
"""

import sys

from trajvlm.eval.bench.tokens import main

if __name__ == "__main__":
    sys.exit(main(prog="python eval/bench_tokens.py"))
