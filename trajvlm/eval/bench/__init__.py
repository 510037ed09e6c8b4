"""Benchmarks: TrajVLM vs the patch baseline, each comparison measured side by side in ONE run.

- ``tokens``            visual tokens into the LLM vs video length (static / busy ShapesQA scene, a real video) + plot
- ``latency``           time to first token and peak RSS (fresh subprocess per run, variants alternated)
- ``train_throughput``  finetuning samples/s (forward + backward + optimizer step), variants alternated
- ``segmenter``         TrajTok segmenter vs a classical superpixel + optical-flow pipeline (frames/s, matched mIoU)
- ``efficiency``        real-scale token / FLOP accounting (``trajvlm.eval.efficiency``)

Each has a ``main(argv)`` (``trajvlm bench <name> ...`` and ``python eval/bench_<name>.py ...`` both call it),
prints its figures, writes a markdown record (command, machine, raw numbers) when ``--out`` is given, and never
asserts on timings.
"""
