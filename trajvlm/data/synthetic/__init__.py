"""ShapesQA: procedurally rendered videos of coloured shapes with exact masks, captions and MC QA.

- `scene.py`     constants (colours, shapes, directions) and the frozen scene dataclasses
- `sampler.py`   `sample_scene(rng, SceneConfig, needle=...)`: random valid scenes
- `render.py`    `render_scene(scene) -> frames (T,H,W,3) uint8, masks (T,H,W) uint16, graph (N,T) int32`
- `questions.py` `make_caption(scene, occlusions)`, `make_questions(scene, rng) -> list[Question]`
- `generate.py`  `generate_dataset(out_dir, num_videos, seed, ...)`, `make_example(seed, index, cfg)`
- `__main__.py`  CLI: `python -m trajvlm.data.synthetic --out DIR --num-videos N --seed S`
"""

from trajvlm.data.synthetic.generate import GeneratorConfig, VideoExample, generate_dataset, make_example, split_of
from trajvlm.data.synthetic.questions import CATEGORIES, Question, make_caption, make_questions
from trajvlm.data.synthetic.render import occlusion_pairs, render_masks, render_scene
from trajvlm.data.synthetic.sampler import SceneSamplingError, sample_scene
from trajvlm.data.synthetic.scene import (
    COLOURS,
    DIRECTIONS,
    SHAPES,
    BackgroundSpec,
    ObjectSpec,
    SceneConfig,
    SceneSpec,
    scene_from_dict,
    scene_to_dict,
)

__all__ = [
    "CATEGORIES", "COLOURS", "DIRECTIONS", "SHAPES",
    "BackgroundSpec", "GeneratorConfig", "ObjectSpec", "Question", "SceneConfig", "SceneSamplingError", "SceneSpec",
    "VideoExample", "generate_dataset", "make_caption", "make_example", "make_questions", "occlusion_pairs",
    "render_masks", "render_scene", "sample_scene", "scene_from_dict", "scene_to_dict", "split_of",
]
