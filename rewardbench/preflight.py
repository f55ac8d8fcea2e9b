"""Checks that refuse a scoring run before any model loads or any image is decoded: a run that cannot work
as asked is one clear `UsageError` (the CLI's exit 2), never a traceback and never N failed rows.

`plan_run` is the one preflight of a scoring run, for the CLI and for `rewardbench.Scorer.run` alike: it
checks everything and returns a `RunPlan` (the opened source, the grouping, the rewards' canonical names
and specs, the output paths and the notes to show once). What is checked: the device exists; every
``--config`` key is an option the reward takes, every value one its spec's option can take (type, range,
choices: `rewardbench.spec.Option`), and ``--config``/``--weights`` name rewards of the run; the output
paths have a known extension and can be written (`rewardbench.outputs.check_writable`: a missing folder
is created, a path that cannot be written is refused); prompted rewards get prompts; group rewards have
a way to group, and groups as large as they can measure (``RewardSpec.min_group_size``: every group
smaller is refused unless ``allow_small_groups``; some smaller is a note, and the harness marks them);
``--group-by`` names columns the input has; the input's own columns do not clash with the results' columns.
The notes are warnings (e.g. grouping a multi-model manifest by prompt alone, which mixes the generators'
images in one group).

Example:
    >>> from rewardbench.data import ListSource
    >>> import rewardbench
    >>> specs = {"vendi": rewardbench.get_spec("vendi")}
    >>> try:
    ...     check_source(specs, ListSource([{"image": "a.png", "prompt": "x"}]), None)
    ... except UsageError as e:
    ...     print(str(e)[:38])
    vendi is a group reward: pass --group-
    >>> two = [{"image": "a.png", "prompt": "x"}, {"image": "b.png", "prompt": "x"}, {"image": "c.png", "prompt": "y"}]
    >>> plan = plan_run("vendi", two[:2], group_by="prompt")
    >>> plan.names, plan.group_by, plan.notes
    (('vendi',), ('prompt',), ())
    >>> plan_run("vendi", two, group_by="prompt").notes[0][:46]
    '1 of 2 groups by prompt have fewer than the 2 '
    >>> try:
    ...     plan_run("vendi", two[1:], group_by="prompt")
    ... except UsageError as e:
    ...     print(str(e)[:58])
    vendi measures groups of at least 2 images, and every grou
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .data import Source, open_source
from .errors import UsageError
from .groups import GroupBy, group_sizes, parse_group_by
from .outputs import check_writable
from .results import RESULT_EXTENSIONS
from .shards import ROW
from .spec import RewardSpec

# input columns the results cannot take: `error`, and the row position the shards keep (not a results column)
RESERVED_COLUMNS = (ROW, "error")
SMALL_GROUPS_FLAG = "--allow-small-groups"


def check_device(device: str | torch.device | None) -> None:
    """Refuse a device this machine does not have (``cuda`` without a GPU, ``cuda:3`` with two)."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise UsageError(f"--device {device}: not a device ({e}); use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: no CUDA GPU is visible to torch (torch.cuda.is_available() is "
                             "False); use --device cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise UsageError(f"--device {device}: this machine has {n} CUDA GPU(s) (cuda:0..cuda:{n - 1})")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UsageError(f"--device {device}: the MPS backend is not available here; use --device cpu")


# options of `rewardbench.load_reward` itself that every reward takes through a config (``--config NAME:remote=ray``
# scores NAME on a reward service, `rewardbench.remote`)
LOAD_OPTIONS = ("remote", "remote_timeout_s")


def builder_options(name: str) -> list[str] | None:
    """The keyword options reward ``name`` takes: those its spec declares (`rewardbench.spec.Option`) and those its
    builder names; None when the builder takes ``**kwargs`` and the spec declares none (unknown)."""
    from .registry import REGISTRY

    entry = REGISTRY.entry(name)
    declared = list(entry.resolve_spec().options)
    target = entry.load_target()
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return declared or None
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "spec"]
    if any(p.kind is p.VAR_KEYWORD for p in params) and not declared:
        return None
    return list(dict.fromkeys([*declared, *named]))


def check_option_values(name: str, spec: RewardSpec, config: Mapping[str, Any], flag: str = "--config ") -> None:
    """`UsageError` (one line) for a value of ``config`` that the option reward ``name`` declares cannot take
    (`rewardbench.spec.Option.check`: its type, bounds or choices); keys it does not declare are not judged here.
    The message starts with ``flag`` and the reward's name, as the command line's option wrote it.

    Example:
        >>> import rewardbench
        >>> try:
        ...     check_option_values("jpeg-compressibility", rewardbench.get_spec("jpeg-compressibility"),
        ...                         {"quality": 1000})
        ... except UsageError as e:
        ...     print(str(e)[:66])
        --config jpeg-compressibility:quality=1000: must lie in [0, 100] (
    """
    for key, value in config.items():
        option = spec.options.get(key)
        if option is None:
            continue
        try:
            option.check(key, value)
        except ValueError as e:
            raise UsageError(f"{flag}{name}:{e} ({key}: {option.describe()})") from None


def check_reward_options(names: Sequence[str], weights: Mapping[str, Any] | None = None,
                         config: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Canonical names of the rewards (unknown names raise `UnknownRewardError` with "did you mean");
    `UsageError` for a reward listed twice, ``weights``/``config`` for a reward not in the run, a
    config key the reward does not take (`builder_options`), or a value its spec's option cannot take
    (`check_option_values`)."""
    from .registry import REGISTRY, did_you_mean

    canon = [REGISTRY.canonical(n) for n in names]
    if not canon:
        raise UsageError("no reward given")
    if len(set(canon)) != len(canon):
        raise UsageError(f"a reward is listed twice: {list(names)}")
    for flag, given in (("--weights", weights or {}), ("--config", config or {})):
        for n in given:
            if REGISTRY.canonical(n) not in canon:
                raise UsageError(f"{flag} {n}: {n!r} is not among the rewards of this run ({', '.join(canon)})")
    for n, cfg in (config or {}).items():
        c = REGISTRY.canonical(n)
        allowed = builder_options(c)
        for key in cfg if allowed is not None else ():
            if key not in allowed and key not in LOAD_OPTIONS:
                raise UsageError(f"--config {n}:{key}: {c} takes no option {key!r}." + did_you_mean(key, allowed)
                                 + f" Its options: {', '.join(allowed) or 'none'}")
        check_option_values(n, REGISTRY.spec(c), cfg)
    return canon


def check_source(specs: Mapping[str, RewardSpec], source: Source, group_by: GroupBy | None) -> list[str]:
    """`UsageError` when the input cannot serve these rewards; otherwise the warnings to show."""
    where = source.description.split(":", 1)[-1] or "the input"
    prompted = [n for n, s in specs.items() if s.needs_prompt]
    if prompted and not source.has_prompts:
        how = ("give --prompts FILE (one prompt per line)" if source.description.startswith("folder:")
               else "add a 'prompt' column to the manifest" if source.description.startswith("manifest:")
               else "give each item a 'prompt'")
        raise UsageError(f"{', '.join(prompted)} need{'s' if len(prompted) == 1 else ''} a prompt per image, and "
                         f"{where} has none: {how}")
    for col in group_by or ():
        if col == "prompt" and not source.has_prompts:
            raise UsageError(f"--group-by prompt: {where} has no prompts")
        if col != "prompt" and col not in source.columns:
            raise UsageError(f"--group-by {col}: {where} has no {col!r} column (its columns: "
                             f"{', '.join(source.columns)})")
    grouped = [n for n, s in specs.items() if s.granularity == "group"]
    if grouped and not group_by:
        raise UsageError(f"{', '.join(grouped)} {'is a group reward' if len(grouped) == 1 else 'are group rewards'}: "
                         "pass --group-by COLUMN[,COLUMN] (e.g. --group-by prompt, or prompt,model for several "
                         "generators) or give the input a 'group' column")
    for col in source.extra_columns:
        clash = [r for r in specs if col == r or col.startswith(f"{r}.")]
        if clash or col in RESERVED_COLUMNS:
            what = (f"the reward column {clash[0]!r}" if clash else "the results column 'error'" if col == "error"
                    else f"the column {col!r} that keeps each row's position while scoring")
            raise UsageError(f"input column {col!r} of {where} clashes with {what}; rename it in the input")
    warnings = []
    if grouped and group_by and "model" in source.extra_columns and "model" not in group_by and "group" not in group_by:
        warnings.append(f"the input has a 'model' column but groups are formed by {','.join(group_by)} alone: images "
                        f"of different models share a group for {', '.join(grouped)}; pass --group-by "
                        f"{','.join(group_by)},model to score each model's images apart")
    return warnings


def check_group_sizes(specs: Mapping[str, RewardSpec], source: Source, group_by: GroupBy | None,
                      allow_small_groups: bool = False) -> list[str]:
    """Group rewards against the groups ``group_by`` forms (one pass over the input's rows, no image read):
    `UsageError` when every group is smaller than a reward's ``min_group_size`` (its value would measure nothing),
    unless ``allow_small_groups``; a note when some are (they are scored, marked ``<reward>.group_too_small`` and
    left out of the summary, or counted in it with ``allow_small_groups``)."""
    by_min: dict[int, list[str]] = {}
    for n, s in specs.items():
        if s.granularity == "group" and s.min_group_size > 1:
            by_min.setdefault(s.min_group_size, []).append(n)
    if not by_min or not group_by:
        return []
    sizes = group_sizes(source.iter_rows(), group_by)
    if not sizes:
        return []
    where = source.description.split(":", 1)[-1] or "the input"
    by = ",".join(group_by)
    notes = []
    for m, names in sorted(by_min.items()):
        small = sum(n < m for n in sizes.values())
        if not small:
            continue
        who = f"{', '.join(names)} measure{'s' if len(names) == 1 else ''}"
        if small == len(sizes) and not allow_small_groups:
            largest = max(sizes.values())
            raise UsageError(f"{who} groups of at least {m} images, and every group by {by} in {where} has fewer "
                             f"(the largest: {largest} image{'' if largest == 1 else 's'}): group several images "
                             "together (e.g. --group-by prompt with several images per prompt, or a column shared "
                             f"by more images), or pass {SMALL_GROUPS_FLAG} to score them anyway (marked)")
        fate = ("counted in the summary as asked (" + SMALL_GROUPS_FLAG + ")" if allow_small_groups
                else "left out of the summary")
        notes.append(f"{small} of {len(sizes)} groups by {by} have fewer than the {m} images {who}: scored, "
                     f"marked ({names[0]}.group_too_small) and {fate}")
    return notes


@dataclass(frozen=True)
class RunPlan:
    """A scoring run that passed `plan_run`: what `rewardbench.Scorer.run` scores, and the notes for
    whoever made the plan to show (once)."""

    source: Source
    group_by: GroupBy | None  # None when the run has no group reward (grouping changes only those)
    names: tuple[str, ...]  # the rewards' canonical names, in run order
    specs: Mapping[str, RewardSpec]
    out: Path | None = None
    group_table: Path | None = None
    notes: tuple[str, ...] = ()
    allow_small_groups: bool = False  # groups smaller than a reward's min_group_size: counted in the summary


def plan_run(rewards: str | Sequence[str] | Mapping[str, RewardSpec], source: Any, *,
             prompts: str | os.PathLike | Sequence[str] | None = None, group_by: str | Sequence[str] | None = None,
             out: str | os.PathLike | None = None, group_table: str | os.PathLike | None = None,
             device: Any = None, weights: Mapping[str, Any] | None = None,
             config: Mapping[str, Mapping[str, Any]] | None = None, allow_small_groups: bool = False) -> RunPlan:
    """Every check of a scoring run that needs no model (see the module docstring), in one step.

    ``rewards``: names (``"a,b"`` or a list; unknown names raise `rewardbench.registry.UnknownRewardError`
    with "did you mean") or ``{column: spec}`` of rewards already built. ``source`` and ``prompts`` as
    `rewardbench.data.open_source` takes them (a bad source raises `rewardbench.data.SourceError`).
    ``group_by`` defaults to the input's ``group`` column when it has one. Raises `UsageError` for a
    run that cannot work as asked; ``allow_small_groups`` accepts groups smaller than a group reward can measure
    (`check_group_sizes`).
    """
    check_device(device)
    if isinstance(rewards, Mapping):
        specs = dict(rewards)
        if weights or config:
            raise UsageError("weights/config apply to rewards given by name, not to built rewards")
    else:
        from .registry import REGISTRY

        names = [n.strip() for n in rewards.split(",")] if isinstance(rewards, str) else [str(n) for n in rewards]
        specs = {n: REGISTRY.spec(n) for n in check_reward_options([n for n in names if n], weights, config)}
    paths: dict[str, Path | None] = {}
    for what, p in (("--out", out), ("--group-table", group_table)):
        if p is not None and not str(p).lower().endswith(RESULT_EXTENSIONS):
            raise UsageError(f"{what} {p}: the extension picks the format; use one of {', '.join(RESULT_EXTENSIONS)}")
        paths[what] = None if p is None else Path(p)
    src = open_source(source, prompts)
    try:
        gb = parse_group_by(group_by)
    except ValueError as e:
        raise UsageError(f"--group-by {group_by}: {e}") from None
    if gb is None and src.has_groups:
        gb = ("group",)
    notes = check_source(specs, src, gb)
    grouped = any(s.granularity == "group" for s in specs.values())
    out_p, gt_p = paths["--out"], paths["--group-table"]
    if gt_p is not None and not grouped:
        raise UsageError(f"--group-table {gt_p}: no group reward in this run ({', '.join(specs)})")
    for what, p in paths.items():
        if p is not None:
            paths[what] = check_writable(p, what)
    out_p, gt_p = paths["--out"], paths["--group-table"]
    if out_p is not None and gt_p is not None and gt_p.resolve() == out_p.resolve():
        raise UsageError(f"--group-table {gt_p}: the same file as --out")
    notes += check_group_sizes(specs, src, gb, allow_small_groups)  # last: it reads the input's rows once
    return RunPlan(src, gb if grouped else None, tuple(specs), specs, out_p, gt_p, tuple(notes),
                   bool(allow_small_groups))
