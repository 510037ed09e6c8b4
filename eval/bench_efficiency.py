"""Real-scale visual-token and FLOP accounting (SigLIP-so400m + Llama-3-8B on the meta device).

    OMP_NUM_THREADS=1 python eval/bench_efficiency.py --preset so400m-llama3-8b --frames 16 64 256 1024 --out eval/results/efficiency.md

Same as `trajvlm bench efficiency ...` (implementation: trajvlm/eval/bench/efficiency.py; --help lists the options).
"""

import sys

from trajvlm.eval.bench.efficiency import main

if __name__ == "__main__":
    sys.exit(main(prog="python eval/bench_efficiency.py"))
