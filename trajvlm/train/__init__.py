"""Training: argument dataclasses, stage freezing + parameter groups, the Trainer subclass, the shared entry.

Import the submodules explicitly (`trajvlm.train.main`, `.stages`, ...): deepspeed/peft are imported only
where they are needed.
"""
