"""Video IO: the one frame sampler and reader shared by training, evaluation and the demo.

`import trajvlm.video` imports neither decord nor PyAV nor torch; backends load inside the functions.
"""

from .errors import VideoDecodeError
from .io import VideoClip, VideoInfo, iter_video_chunks, load_video, probe_video
from .sampling import frame_window, sample_frame_indices, validate_sampling_args
from .writer import write_video

__all__ = [
    "VideoClip",
    "VideoDecodeError",
    "VideoInfo",
    "frame_window",
    "iter_video_chunks",
    "load_video",
    "probe_video",
    "sample_frame_indices",
    "validate_sampling_args",
    "write_video",
]
