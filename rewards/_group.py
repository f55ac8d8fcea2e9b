"""Helpers shared by the group-level rewards (fairness, diversity): split a batch by group id and
give every member its group's value.

Example:
    >>> import torch
    >>> [(g, idx.tolist()) for g, idx in iter_groups(torch.tensor([3, 1, 3]))]
    [(1, [1]), (3, [0, 2])]
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def iter_groups(groups: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """``(group id, member indices)`` in ascending id order; members keep their batch order.

    Each group is computed from its own members only, so a group's value does not depend on the
    other groups in the batch or on their order.
    """
    g = groups.detach().cpu()
    for gid in torch.unique(g).tolist():
        yield int(gid), torch.nonzero(g == gid, as_tuple=False).flatten()


def group_note(notes: dict[int, str], groups: torch.Tensor) -> list[str]:
    """Per-image list of the note of its group ("" when the group has none)."""
    return [notes.get(int(g), "") for g in groups.detach().cpu().tolist()]
