"""The Gradio demo end to end: a real server on a free local port, driven by gradio_client and by Chromium.

One server (tiny TrajVLM from trajvlm.testing) is shared by every test in this module.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import itertools
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from trajvlm.testing import free_port

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "test-output" / "demo_browser.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LIMIT_SECONDS = 3.0  # the server refuses longer videos
MAX_NEW_TOKENS = 10


def _speak_in_words(chat) -> None:
    """Restrict the tiny random LM's output layer to the tokens of a few words (" red", " square", ...).

    Untrained, it emits stray byte pieces (U+FFFD in the text) and may stop at once; restricted, it always
    writes MAX_NEW_TOKENS tokens of readable text, so the token-by-token stream is long enough to observe.
    """
    import torch

    tok = chat.processor.tokenizer
    ids = sorted({i for w in ("red", "square", "moves", "left", "right", "blue")
                  for i in tok(" " + w, add_special_tokens=False).input_ids})
    head = chat.model.get_output_embeddings()
    words = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        words.weight.copy_(head.weight)
        words.bias.fill_(-1e4)
        words.bias[ids] = 0.0
    chat.model.set_output_embeddings(words)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from trajvlm.testing import write_tiny_video

    d = tmp_path_factory.mktemp("demo_videos")
    ok = write_tiny_video(d / "ok.mp4", num_frames=12, size=32, fps=8)  # 1.5 s
    long = write_tiny_video(d / "long.mp4", num_frames=40, size=32, fps=8)  # 5 s > LIMIT_SECONDS
    data = Path(ok).read_bytes()
    corrupt = d / "corrupt.mp4"
    corrupt.write_bytes(data[: len(data) // 3])  # truncated: the index (moov) is gone
    text = d / "notes.mp4"
    text.write_text("these are meeting notes, not a video\n" * 40)
    return SimpleNamespace(ok=ok, long=str(long), corrupt=str(corrupt), text=str(text))


@pytest.fixture(scope="module")
def server(tiny_trajvlm_dir):
    from trajvlm.demo.app import launch
    from trajvlm.demo.pipeline import load_chat
    from trajvlm.demo.settings import DemoSettings

    settings = DemoSettings(
        model_path=tiny_trajvlm_dir, port=free_port(), max_video_minutes=LIMIT_SECONDS / 60,
        max_new_tokens=MAX_NEW_TOKENS, default_frames=8, max_upload_mb=5, concurrency=2,
        gallery_frames=4, overlay_size=128,
    )
    chat = load_chat(settings.model_path, max_frames=settings.max_frames_limit)
    _speak_in_words(chat)
    for attempt in range(3):  # the free port may be taken by another process before gradio binds it
        try:
            demo, url = launch(settings, chat, block=False)
            break
        except OSError:
            if attempt == 2:
                raise
            settings.port = free_port()
    yield SimpleNamespace(url=url, settings=settings, demo=demo)
    demo.close()


@pytest.fixture
def client(server):
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=False)


def _ask(client, video, question, *, frames=8, fps=0.0, budget=0):
    from gradio_client import handle_file

    job = client.submit(handle_file(video), question, frames, fps, budget, api_name="/ask")
    job.result(timeout=60)
    return job.outputs()  # every streamed (answer so far, stats) update, in order


def _chat(client, video, question, history=()):
    from gradio_client import handle_file

    job = client.submit(question, list(history), handle_file(video), 8, 0, 0, api_name="/chat")
    job.result(timeout=60)
    return job.outputs()  # every streamed (chat, question, status, gallery, stats_md, stats) update


def _text(message) -> str:
    content = message["content"]
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content if isinstance(block, dict))
    return str(content)


def test_api_is_named_and_offline_defaults(server, client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/ask", "/chat", "/process_video", "/clear"} <= set(api)
    assert server.url.startswith("http://127.0.0.1:")
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_ask_streams_answer_and_fills_stats(client, videos):
    outputs = _ask(client, videos.ok, "What moves?")
    texts = [text for text, _ in outputs]
    partial = [t for t in dict.fromkeys(texts) if t]
    # token by token: MAX_NEW_TOKENS word pieces (a bare word-boundary token adds no visible text on its own)
    assert len(partial) >= MAX_NEW_TOKENS // 2, f"answer did not stream token by token: {texts}"
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(partial))
    answer, stats = outputs[-1]
    assert answer and not answer.startswith("⚠"), answer
    assert stats["frames"] == 8 and stats["chunks"] >= 1
    assert stats["visual_tokens"] > 0 and stats["patch_tokens"] > 0 and stats["trajectories"] >= 1
    assert stats["visual_tokens"] <= stats["token_budget"]
    for key in ("decode_s", "encode_s", "generate_s"):
        assert stats[key] is not None and stats[key] >= 0


def test_token_budget_bounds_the_visual_tokens(client, videos):
    _, stats = _ask(client, videos.ok, "What moves?", budget=2)[-1]
    assert stats["token_budget"] == 2
    assert 0 < stats["visual_tokens"] <= 2


def test_chat_is_multi_turn_with_overlays(client, videos):
    first = _chat(client, videos.ok, "What moves?")
    chat, _, status, gallery, stats_md, stats = first[-1]
    assert [m["role"] for m in chat] == ["user", "assistant"]
    assert _text(chat[1]) and "Answered" in status
    assert len(gallery) >= 2 and all(item["image"] for item in gallery)  # overlays of sampled frames
    assert "Visual tokens" in stats_md and stats["visual_tokens"] > 0
    progress = [_text(o[0][-1]) for o in first if o[0] and o[0][-1]["role"] == "assistant"]
    assert any("Decod" in p for p in progress), progress  # decode progress was shown in the chat
    second = _chat(client, videos.ok, "And then?", history=chat)
    chat2 = second[-1][0]
    assert [m["role"] for m in chat2] == ["user", "assistant"] * 2
    assert _text(chat2[2]) == "And then?" and _text(chat2[3])


def test_process_video_draws_overlays(client, videos):
    from gradio_client import handle_file

    job = client.submit(handle_file(videos.ok), 8, 0, 0, api_name="/process_video")
    job.result(timeout=60)
    status, gallery, _, stats, _ = job.outputs()[-1]
    assert "trajector" in status and gallery and stats["trajectories"] >= 1
    assert any("Decod" in str(o[0]) for o in job.outputs())


BAD_INPUTS = [  # (video, question, what the user is told)
    ("corrupt", "What moves?", "Could not read the video"),
    ("text", "What moves?", "Could not read the video"),
    ("ok", "   ", "Please type a question"),
    ("long", "What moves?", "accepts videos up to 0:03"),
]


def test_bad_input_gives_a_clear_message_and_the_app_keeps_serving(client, videos):
    for which, question, expected in BAD_INPUTS:
        answer, stats = _ask(client, getattr(videos, which), question)[-1]
        assert answer.startswith("⚠") and expected in answer, (which, answer)
        assert expected in stats["error"]
        chat = _chat(client, getattr(videos, which), question)[-1][0]
        assert expected in _text(chat[-1]), (which, chat)
    answer, stats = _ask(client, videos.ok, "What moves?")[-1]  # still serving
    assert stats.get("visual_tokens", 0) > 0, answer


def test_eight_concurrent_chats_complete(server, videos):
    from gradio_client import Client

    def one(i: int):
        c = Client(server.url, verbose=False, download_files=False)
        return _chat(c, videos.ok, f"Question {i}: what moves?")[-1]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    for chat, _, status, _, _, stats in results:
        assert [m["role"] for m in chat] == ["user", "assistant"]
        assert _text(chat[1]) and not _text(chat[1]).startswith("⚠")
        assert stats["visual_tokens"] > 0


def test_only_uploads_and_examples_are_served(server, client, videos):
    import httpx

    base = server.url.rstrip("/")
    for path in ("/etc/passwd", str(REPO / "pyproject.toml"), str(Path(videos.ok))):
        assert httpx.get(f"{base}/gradio_api/file={path}").status_code == 403, path
    # a request naming a server-side file instead of uploading one is refused
    fake = {"path": str(Path(videos.ok)), "meta": {"_type": "gradio.FileData"}}
    r = httpx.post(f"{base}/gradio_api/call/ask", json={"data": [fake, "What moves?", 8, 0, 0]})
    events = httpx.get(f"{base}/gradio_api/call/ask/{r.json()['event_id']}", timeout=30).text
    assert "event: error" in events and "visual_tokens" not in events
    # uploads above the size limit are refused
    big = Path(videos.ok).with_name("big.mp4")
    big.write_bytes(b"\0" * (server.settings.max_upload_mb * 1024 * 1024 + 1))
    up = httpx.post(f"{base}/gradio_api/upload", files={"files": ("big.mp4", big.read_bytes())})
    assert up.status_code == 413


def test_browser_upload_ask_and_overlay(server, videos):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("Chromium not installed (CI must install it: make sysdeps)")
        pytest.skip("Chromium not installed")
    from playwright.sync_api import sync_playwright

    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(server.url)
            page.locator("#video input[type=file]").set_input_files(videos.ok)
            page.wait_for_selector("#gallery img", timeout=30_000)  # overlays drawn after upload
            page.locator("#question textarea").fill("What moves?")
            page.locator("#send").click()
            page.wait_for_function(
                "document.querySelector('#status') && document.querySelector('#status').innerText.includes('Answered')",
                timeout=30_000,
            )
            bubbles = page.locator("#chatbot .message")
            assert bubbles.count() >= 2
            answer = bubbles.last.inner_text()
            assert answer.strip() and "⚠" not in answer
            assert page.locator("#gallery img").count() >= 2
            assert "Visual tokens" in page.locator("#stats").inner_text()
            hosts = {url.split("/")[2] for url in requested if url.startswith("http")}
            assert hosts == {server.url.split("/")[2]}, f"the page reached outside the app: {hosts}"  # offline UI
            SCREENSHOT.parent.mkdir(exist_ok=True)
            time.sleep(0.3)  # let the last stream update paint
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
