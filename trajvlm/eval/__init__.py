"""Evaluation: the lmms-eval plugin (`lmms_registration`, `lmms_model`), the MovieChat judge
configuration (`judge`) and the `trajvlm eval` wrapper (`run_eval`).

Nothing here is imported by `import trajvlm`; `lmms_registration` is the only module lmms-eval
imports eagerly (through the `lmms_eval.models` entry point) and it imports neither torch nor trajvlm.model.
"""
