"""Build and launch the Gradio long-video chat.

Named API endpoints (for `gradio_client`; all queued, all streaming):

- `/ask`            (video file, question, max_frames, fps, token_budget) -> (answer so far, stats dict).
                    Stateless: one question about one video. Errors come back as text + stats["error"].
- `/chat`           the UI's chat turn (question, chat history, video, frames, fps, budget); multi-turn state
                    is kept per client session on the server.
- `/process_video`  the UI's "video loaded" step: decode in chunks, tokenize, overlay gallery + stats.
- `/clear`          forget the conversation (keeps the video).

Safety: analytics/telemetry are switched off before gradio is imported; the server binds 127.0.0.1 unless
told otherwise; uploads are capped (`max_file_size`); the queue runs at most `concurrency` events at once
and holds at most `queue_size`; the only extra folder gradio may serve is the bundled examples folder
(uploads and gradio's own cache are served as usual, nothing else).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .pipeline import load_chat
from .settings import EXAMPLES_DIR, DemoSettings, apply_offline_env

logger = logging.getLogger(__name__)

TITLE = "TrajVLM · long-video chat"
INTRO = (
    "Upload a video (or pick an example) and ask about it. TrajVLM turns every **object trajectory** into a "
    "token instead of one token per space-time patch, so the visual token count follows what is in the scene, "
    "not how long the video is. Long videos are decoded and tokenized in chunks."
)
CSS = """
#stats table { font-size: 0.9em; }
#status { min-height: 2.2em; }
"""


def bundled_examples(examples_dir: Path = EXAMPLES_DIR) -> list[tuple[Path, str]]:
    """[(video path, suggested question)] from `examples.json` in the examples folder (missing files skipped)."""
    index = examples_dir / "examples.json"
    if not index.exists():
        return []
    rows = []
    for item in json.loads(index.read_text()):
        video = examples_dir / item["video"]
        if video.exists():
            rows.append((video, item.get("question", "")))
    return rows


def build_app(settings: DemoSettings, chat, *, examples_dir: Path = EXAMPLES_DIR):
    """The `gr.Blocks` of the demo, queued; `chat` is a loaded TrajVLMChat shared by every session."""
    apply_offline_env()
    import gradio as gr

    from .session import DemoHandlers, SessionState

    handlers = DemoHandlers(chat, settings)

    with gr.Blocks(title=TITLE) as demo:
        state = gr.State(SessionState(), time_to_live=3600)
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                video = gr.Video(label="Video", sources=["upload"], height=260, elem_id="video")
                with gr.Accordion("Sampling and tokens", open=True):
                    frames = gr.Slider(1, settings.max_frames_limit, value=settings.default_frames, step=1,
                                       label="Frames (at most)", elem_id="frames")
                    fps = gr.Slider(0, settings.max_fps, value=settings.default_fps or 0, step=0.25,
                                    label="Frames per second, at most (0 = no cap)", elem_id="fps")
                    budget = gr.Slider(0, settings.max_token_budget, value=settings.default_token_budget or 0,
                                       step=1, label="Token budget (0 = the model's own)", elem_id="budget")
                status = gr.Markdown("Upload a video or pick an example.", elem_id="status")
                stats_md = gr.Markdown(handlers_stats_placeholder(), elem_id="stats")
                with gr.Accordion("Raw stats (JSON)", open=False):
                    stats_json = gr.JSON(label="stats", elem_id="stats-json")
            with gr.Column(scale=3, min_width=400):
                chatbot = gr.Chatbot(label="Chat", height=360, elem_id="chatbot",
                                     placeholder="Ask about the video, e.g. *What colour is the circle?*")
                with gr.Row():
                    question = gr.Textbox(label="Question", placeholder="Ask a question about the video…", show_label=False,
                                          scale=5, elem_id="question", lines=1, max_lines=6)
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                    clear = gr.Button("Clear", scale=1, elem_id="clear")
                gallery = gr.Gallery(label="Trajectories over sampled frames (one colour per trajectory)",
                                     columns=4, height="auto", object_fit="contain", elem_id="gallery",
                                     interactive=False)
        examples = bundled_examples(examples_dir)
        if examples:
            gr.Examples([[str(v), q] for v, q in examples], inputs=[video, question], label="Examples")

        def slots(names, update: dict):
            return tuple(update.get(n, gr.skip()) for n in names)

        video_out_names = ["status", "gallery", "stats_md", "stats", "chat", "state"]
        video_outputs = [status, gallery, stats_md, stats_json, chatbot, state]

        def on_video(v, f, r, b, s):
            first = True
            for update in handlers.process_video(v, f, r, b, s):
                if first:  # a new video starts a new conversation
                    update = {**update, "chat": []}
                    first = False
                yield slots(video_out_names, update)

        chat_out_names = ["chat", "question", "status", "gallery", "stats_md", "stats", "state"]
        chat_outputs = [chatbot, question, status, gallery, stats_md, stats_json, state]

        def on_chat(q, history, v, f, r, b, s):
            for update in handlers.chat_turn(q, history, v, f, r, b, s):
                yield slots(chat_out_names, update)

        def on_clear(s):
            return slots(chat_out_names, handlers.clear(s))

        def on_sampling(v, f, r, b, s):  # a slider moved: same conversation, new frames / budget
            if v is None:
                yield slots(video_out_names, {})
                return
            for update in handlers.process_video(v, f, r, b, s):
                yield slots(video_out_names, update)

        video_inputs = [video, frames, fps, budget, state]
        video.change(on_video, video_inputs, video_outputs, api_name="process_video", trigger_mode="always_last")
        for slider in (frames, fps, budget):
            slider.release(on_sampling, video_inputs, video_outputs, api_visibility="private",
                           trigger_mode="always_last")
        chat_inputs = [question, chatbot, video, frames, fps, budget, state]
        send.click(on_chat, chat_inputs, chat_outputs, api_name="chat")
        question.submit(on_chat, chat_inputs, chat_outputs, api_visibility="private")
        clear.click(on_clear, [state], chat_outputs, api_name="clear")

        def ask(video, question, max_frames=settings.default_frames, fps=settings.default_fps or 0.0, token_budget=0):
            """One question about one video, streamed: yields (answer so far, stats dict).
            fps 0 = no rate cap; token_budget 0 = the model's own; errors come back as the answer text and
            stats["error"]."""
            path = video.get("path") if isinstance(video, dict) else getattr(video, "path", video)
            yield from handlers.ask(path, question, max_frames, fps, token_budget)

        # real types (this module uses postponed annotations); the tuple return = two outputs (answer, stats)
        ask.__annotations__ = {"video": gr.FileData, "question": str, "max_frames": int, "fps": float,
                               "token_budget": int, "return": tuple[str, dict]}
        gr.api(ask, api_name="ask")

    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    return demo


def handlers_stats_placeholder() -> str:
    from .stats import DemoStats

    return DemoStats().to_markdown()


def launch(settings: DemoSettings, chat=None, *, block: bool = True, examples_dir: Path = EXAMPLES_DIR):
    """Build and start the app. Returns (demo, local_url); with `block=True` serves until interrupted."""
    apply_offline_env()
    if chat is None:
        chat = load_chat(settings.model_path, device=settings.device, max_frames=settings.max_frames_limit)
    if settings.temp_dir is not None:  # gradio's upload + cache folder (read by gradio when it stores a file)
        os.environ["GRADIO_TEMP_DIR"] = str(Path(settings.temp_dir).resolve())
    demo = build_app(settings, chat, examples_dir=examples_dir)
    allowed = [str(Path(examples_dir).resolve())] if Path(examples_dir).is_dir() else []
    _, local_url, _ = demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        allowed_paths=allowed,
        max_file_size=f"{settings.max_upload_mb}mb",
        state_session_capacity=settings.max_sessions,
        prevent_thread_lock=True,
        quiet=True,
        show_error=False,
        css=CSS,
        mcp_server=False,
        pwa=False,
        ssr_mode=False,
    )
    logger.info("TrajVLM demo running at %s", local_url)
    if block:
        try:
            demo.block_thread()
        finally:
            demo.close()
    return demo, local_url
