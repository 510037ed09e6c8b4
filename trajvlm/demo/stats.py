"""The live statistics shown beside the chat: tokens used vs the patch baseline, trajectories, timings."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class DemoStats:
    """One row of numbers per processed video / answer. `None` = not measured yet."""

    frames: int | None = None  # sampled frames the model saw
    video_seconds: float | None = None  # duration of the source video
    chunks: int | None = None  # decode chunks
    visual_tokens: int | None = None  # tokens spliced into the LLM prompt (TrajTok)
    patch_tokens: int | None = None  # what the patch baseline would use for the same frames
    token_budget: int | None = None  # the cap in force (None: the model's own)
    trajectories: int | None = None
    decode_s: float | None = None
    encode_s: float | None = None
    generate_s: float | None = None

    @property
    def compression(self) -> float | None:
        if not self.visual_tokens or self.patch_tokens is None:
            return None
        return self.patch_tokens / self.visual_tokens

    def to_dict(self) -> dict:
        d = asdict(self)
        d["compression"] = None if self.compression is None else round(self.compression, 2)
        return d

    def to_markdown(self) -> str:
        def num(v, fmt="{}"):
            return "–" if v is None else fmt.format(v)

        budget = "model default" if self.token_budget is None else str(self.token_budget)
        ratio = num(self.compression, "{:.1f}× fewer")
        rows = [
            ("Visual tokens (TrajTok)", f"**{num(self.visual_tokens)}** (budget: {budget})"),
            ("Patch baseline, same frames", f"{num(self.patch_tokens)} ({ratio})"),
            ("Trajectories found", num(self.trajectories)),
            ("Frames sampled", (f"{num(self.frames)} of {num(self.video_seconds, '{:.1f}')} s video, "
                                f"{num(self.chunks)} chunk(s)")),
            ("Decode / encode / generate", (f"{num(self.decode_s, '{:.2f}')} s / {num(self.encode_s, '{:.2f}')} s / "
                                            f"{num(self.generate_s, '{:.2f}')} s")),
        ]
        return "| Measure | This video |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
