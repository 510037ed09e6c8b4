"""TrajTok segmenter vs felzenszwalb/SLIC + Farneback optical flow: frames/s and matched mIoU.

    OMP_NUM_THREADS=1 python eval/bench_segmenter_vs_classical.py --num-videos 8 --out eval/results/segmenter_vs_classical.md

Same as `trajvlm bench segmenter ...` (implementation: trajvlm/eval/bench/segmenter_vs_classical.py; --help lists the options).
"""

import sys

from trajvlm.eval.bench.segmenter_vs_classical import main

if __name__ == "__main__":
    sys.exit(main(prog="python eval/bench_segmenter_vs_classical.py"))
