"""Time to first token and peak RSS on this CPU, TrajVLM vs the patch baseline of the same size.

    OMP_NUM_THREADS=1 python eval/bench_latency.py --frames 256 1024 --repeats 3 --out eval/results/latency.md

Same as `trajvlm bench latency ...` (implementation: trajvlm/eval/bench/latency.py; --help lists the options).
"""

import sys

from trajvlm.eval.bench.latency import main

if __name__ == "__main__":
    sys.exit(main(prog="python eval/bench_latency.py"))
