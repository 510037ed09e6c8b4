"""Length-grouped sampling: batches of similar estimated length (visual + text tokens), deterministic per seed/epoch.

Per epoch: a seeded permutation is cut into megabatches of `batch_size * world_size * megabatch_mult`
indices; each megabatch is sorted by length (longest first), then cut into groups of
`batch_size * world_size` (one optimizer micro-step across all ranks: consecutive `batch_size` indices are
one device's batch, which is how accelerate shards a sampler). The groups are shuffled, the incomplete last
group stays last, and with `longest_first` the group holding the longest sample goes first so an
out-of-memory shows up at step 0. Every index appears exactly once per epoch.

Use it as the HF Trainer's train sampler (override `_get_train_sampler`); accelerate calls `set_epoch`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


class LengthGroupedSampler(torch.utils.data.Sampler[int]):
    """Indices of `lengths` (one estimated length per sample, e.g. `LazyVideoTextDataset.lengths`)."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        world_size: int = 1,
        seed: int = 0,
        megabatch_mult: int = 16,
        longest_first: bool = True,
    ):
        if batch_size < 1 or world_size < 1 or megabatch_mult < 1:
            raise ValueError(
                f"batch_size, world_size and megabatch_mult must be >= 1, got {batch_size}, {world_size}, {megabatch_mult}"
            )
        if len(lengths) == 0:
            raise ValueError("LengthGroupedSampler needs at least one sample")
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)  # (n,)
        self.batch_size, self.world_size = int(batch_size), int(world_size)
        self.seed, self.megabatch_mult, self.longest_first = int(seed), int(megabatch_mult), bool(longest_first)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.lengths.numel())

    def indices(self) -> list[int]:
        """This epoch's order (what `__iter__` yields)."""
        n = len(self)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(n, generator=g)  # (n,)
        group = self.batch_size * self.world_size
        mega = group * self.megabatch_mult
        groups: list[torch.Tensor] = []
        for lo in range(0, n, mega):
            chunk = perm[lo : lo + mega]
            # stable sort on -length keeps the random order among equal lengths
            order = torch.sort(-self.lengths[chunk], stable=True).indices
            chunk = chunk[order]
            groups.extend(chunk[i : i + group] for i in range(0, len(chunk), group))
        full = [gr for gr in groups if len(gr) == group]
        partial = [gr for gr in groups if len(gr) != group]
        full = [full[i] for i in torch.randperm(len(full), generator=g).tolist()]
        ordered = full + partial
        if self.longest_first and ordered:
            longest = int(torch.argmax(self.lengths))
            k = next(i for i, gr in enumerate(ordered) if bool((gr == longest).any()))
            if k < len(full):  # never move the incomplete group to the front
                ordered.insert(0, ordered.pop(k))
        return torch.cat(ordered).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())
