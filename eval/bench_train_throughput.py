"""Finetuning samples/s, TrajVLM vs the patch baseline (one run, alternating).

    OMP_NUM_THREADS=1 python eval/bench_train_throughput.py --frames 16 64 --out eval/results/train_throughput.md

Same as `trajvlm bench train ...` (implementation: trajvlm/eval/bench/train_throughput.py; --help lists the options).
"""

import sys

from trajvlm.eval.bench.train_throughput import main

if __name__ == "__main__":
    sys.exit(main(prog="python eval/bench_train_throughput.py"))
