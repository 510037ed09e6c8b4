"""The Gradio long-video chat demo (`trajvlm demo`, `python demo/app.py`).

Modules, one job each:

- `settings.py`  `DemoSettings`: model path, network binding, limits (upload size, video length, frames,
                  concurrency). Safe defaults: 127.0.0.1, bounded uploads and frames.
- `pipeline.py`  gradio-free work: validate input, decode a video chunk by chunk (bounded memory), tokenize
                  it, stream an answer; everything reported as a stream of events (progress, text, result).
- `overlay.py`   draw each trajectory as a coloured overlay (mask tint + box + id) over sampled frames.
- `stats.py`     the live statistics table (visual tokens vs the patch baseline, trajectories, timings).
- `session.py`   per-user session state and the UI handlers (events -> chat messages, gallery, stats).
- `app.py`       builds the `gr.Blocks` UI, its named API endpoints, and launches it.

Importing this package does not import gradio or torch; `app.py` sets the telemetry switches off before
it imports gradio.
"""
