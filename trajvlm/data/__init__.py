"""Training and evaluation data.

- `trajvlm.data.synthetic`: ShapesQA, the built-in procedurally rendered dataset (videos, exact
  instance masks, trajectory graphs, captions and multiple-choice QA). CLI: `python -m trajvlm.data.synthetic`.

Submodules are imported explicitly by their users; importing `trajvlm.data` has no side effects.
"""
