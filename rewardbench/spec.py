"""Declarative metadata of a reward (`RewardSpec`) and what a reward returns (`RewardOutput`).

The CLI, the scoring harness and the leaderboards read these declarations; no code anywhere
branches on a reward's name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

Category = Literal["preference", "aesthetic", "composition", "fairness", "diversity", "safety", "baseline"]
CATEGORIES: tuple[str, ...] = ("preference", "aesthetic", "composition", "fairness", "diversity", "safety", "baseline")
Granularity = Literal["image", "group"]
WeightKind = Literal["hub", "url", "file", "bundled"]


@dataclass(frozen=True)
class WeightSource:
    """Where a reward's weights come from.

    kind:
      - ``"hub"``: a Hugging Face hub repository ``location`` (``filename`` inside it, or the
        whole snapshot when ``filename`` is None);
      - ``"url"``: a direct download URL;
      - ``"file"``: a path on disk (absolute, or relative to ``$REWARDBENCH_WEIGHTS``);
      - ``"bundled"``: shipped inside an installed package (works offline).
    sha256: the digest the source publishes, checked after download when given (a prefix when that is
      all the publisher gives, e.g. the 8 hex digits in open_clip's release file names; `url_digest`).
    md5: the MD5 the source publishes, for publishers that give only that; checked the same way.
    """

    kind: WeightKind
    location: str
    filename: str | None = None
    sha256: str | None = None
    md5: str | None = None
    revision: str | None = None
    note: str = ""

    def describe(self) -> str:
        where = self.location + (f"/{self.filename}" if self.filename else "")
        if self.revision:
            where += f"@{self.revision}"
        return f"{self.kind}:{where}"


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
               list: "a list"}
_PLAIN = (str, int, float, bool, list, tuple, dict)  # what a command line or a YAML file can give


@dataclass(frozen=True)
class Option:
    """One constructor option of a reward, declared in its spec (`RewardSpec.options`): the type of its value
    (``bool``, ``int``, ``float``, ``str``, ``dict`` or ``list``), its bounds (``low``/``high``, inclusive) or
    ``choices``, its default, whether None is a value (``optional``) and one line of ``help``.

    `check` refuses a value the reward cannot take, in one line naming the option. A value that no command line
    or YAML file can give (an object built in Python: a detector, a module) passes unchecked.

    Example:
        >>> quality = Option(int, 95, "JPEG quality", low=0, high=100)
        >>> quality.check("quality", 80)
        80
        >>> for bad in ("abc", 1000, 9.5):
        ...     try:
        ...         quality.check("quality", bad)
        ...     except ValueError as e:
        ...         print(e)
        quality='abc': expected an integer, got a str
        quality=1000: must lie in [0, 100]
        quality=9.5: expected an integer, got a float
        >>> quality.describe()
        'an integer in [0, 100], default 95: JPEG quality'
        >>> Option(str, "ita", choices=("ita", "monk")).check("scale", "mnok")
        Traceback (most recent call last):
        ...
        ValueError: scale='mnok': must be one of ita, monk (did you mean 'monk'?)
    """

    type: type
    default: Any = None
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    optional: bool = False  # None is a value (e.g. "no limit")

    def __post_init__(self) -> None:
        if self.type not in _TYPE_WORDS:
            raise TypeError(f"Option type must be one of {', '.join(t.__name__ for t in _TYPE_WORDS)}, "
                            f"got {self.type!r}")

    def _type_ok(self, value: Any) -> bool:
        if self.type is bool:
            return isinstance(value, bool)
        if isinstance(value, bool):  # True is an int to Python, never to an option
            return False
        if self.type is float:
            return isinstance(value, (int, float))
        if self.type is list:
            return isinstance(value, (list, tuple))
        if self.type is dict:
            return isinstance(value, Mapping)
        return isinstance(value, self.type)

    def check(self, key: str, value: Any) -> Any:
        """``value`` when option ``key`` can take it; otherwise `ValueError` saying why, in one line."""
        if value is None:
            if self.optional or self.default is None:
                return value
            raise ValueError(f"{key}=None: expected {_TYPE_WORDS[self.type]}")
        if not isinstance(value, _PLAIN):  # built in Python (a detector, a module): the builder's to judge
            return value
        if not self._type_ok(value):
            raise ValueError(f"{key}={value!r}: expected {_TYPE_WORDS[self.type]}, got a {type(value).__name__}")
        if self.choices and value not in self.choices:
            import difflib

            close = difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1)
            raise ValueError(f"{key}={value!r}: must be one of {', '.join(map(str, self.choices))}"
                             + (f" (did you mean {close[0]!r}?)" if close else ""))
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            bounds = self._bounds()
            raise ValueError(f"{key}={value!r}: must {'lie in' if bounds.startswith('[') else 'be'} {bounds}")
        return value

    def _bounds(self) -> str:
        if self.low is not None and self.high is not None:
            return f"[{self.low:g}, {self.high:g}]"
        return f">= {self.low:g}" if self.low is not None else f"<= {self.high:g}"

    def describe(self) -> str:
        """The option in words: its type, bounds or choices, default and help."""
        what = _TYPE_WORDS[self.type]
        if self.choices:
            what = "one of " + ", ".join(map(str, self.choices))
        elif self.low is not None or self.high is not None:
            bounds = self._bounds()
            what += f" in {bounds}" if bounds.startswith("[") else f" {bounds}"
        if self.optional:
            what += " or None"
        return f"{what}, default {self.default!r}" + (f": {self.help}" if self.help else "")

    def as_dict(self) -> dict[str, Any]:
        """A flat dict for tables and JSON (`RewardSpec.as_row`)."""
        default = self.default if self.default is None or isinstance(self.default, _PLAIN) else repr(self.default)
        if isinstance(default, float) and default != default:  # NaN is not JSON
            default = "nan"
        return {"type": self.type.__name__, "default": default, "low": self.low, "high": self.high,
                "choices": list(self.choices) or None, "optional": self.optional, "help": self.help}


@dataclass(frozen=True)
class RewardSpec:
    """Everything the harness, CLI and leaderboards need to know about a reward, declared once.

    Example:
        >>> spec = RewardSpec(name="brightness", category="baseline", higher_is_better=True,
        ...                   range=(0.0, 1.0))
        >>> spec.offline
        True
        >>> RewardSpec(name="spread", category="diversity", granularity="group", min_group_size=2).as_row()[
        ...     "min_group_size"]
        2
        >>> RewardSpec(name="sharp", category="baseline", options={"sigma": Option(float, 1.0, low=0)}).as_row()[
        ...     "options"]["sigma"]["low"]
        0
    """

    name: str
    category: Category
    higher_is_better: bool = True
    # (lowest, highest) score the reward can give, None on a side with no bound (JPEG sizes): read as bounds
    # (composite normalize="range", benchmark mean intervals), so never a merely typical range
    range: tuple[float | None, float | None] = (None, None)
    granularity: Granularity = "image"
    # group rewards: the fewest images a group needs for its value to measure anything (parity or diversity of
    # one image is its worst value, or 1.0, by definition); smaller groups are refused or marked by the harness
    min_group_size: int = 1
    differentiable: bool = False  # gradients reach the input pixels
    needs_prompt: bool = False
    backbone: str | None = None  # e.g. "open_clip:ViT-L-14/openai": rewards with the same id share image features
    weights: tuple[WeightSource, ...] = ()
    license: str = ""
    paper: str = ""
    description: str = ""
    aliases: tuple[str, ...] = ()
    # keyword arguments that build a tiny, fast, randomly initialised variant (used by the tests)
    tiny_config: Mapping[str, Any] = field(default_factory=dict)
    # the builder's options a user may set (``--config NAME:KEY=VALUE``), each with its type and range: values are
    # checked before the reward is built (`rewardbench.preflight.check_reward_options`, `rewardbench.load_reward`)
    options: Mapping[str, Option] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"RewardSpec {self.name!r}: category {self.category!r} is not one of {CATEGORIES}")
        if self.granularity not in ("image", "group"):
            raise ValueError(f"RewardSpec {self.name!r}: granularity must be 'image' or 'group'")
        if not isinstance(self.min_group_size, int) or self.min_group_size < 1:
            raise ValueError(f"RewardSpec {self.name!r}: min_group_size must be an int >= 1")
        if self.min_group_size > 1 and self.granularity != "group":
            raise ValueError(f"RewardSpec {self.name!r}: min_group_size applies to group rewards only")
        for w in self.weights:
            if not isinstance(w, WeightSource):
                raise TypeError(f"RewardSpec {self.name!r}: weights must be WeightSource objects, got {w!r}")
        for k, o in self.options.items():
            if not isinstance(o, Option):
                raise TypeError(f"RewardSpec {self.name!r}: options[{k!r}] must be an Option, got {o!r}")

    @property
    def offline(self) -> bool:
        """True when the reward needs nothing downloaded (no weights, or weights bundled in a package)."""
        return all(w.kind == "bundled" for w in self.weights)

    def replace(self, **changes: Any) -> RewardSpec:
        return dataclasses.replace(self, **changes)

    def as_row(self) -> dict[str, Any]:
        """A flat dict for tables and JSON."""
        lo, hi = self.range
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "category": self.category,
            "higher_is_better": self.higher_is_better,
            "range": [lo, hi],
            "granularity": self.granularity,
            "min_group_size": self.min_group_size,
            "differentiable": self.differentiable,
            "needs_prompt": self.needs_prompt,
            "backbone": self.backbone,
            "offline": self.offline,
            "weights": [w.describe() for w in self.weights],
            "license": self.license,
            "paper": self.paper,
            "description": self.description,
            "options": {k: o.as_dict() for k, o in self.options.items()},
        }


@dataclass
class RewardOutput:
    """Scores for a batch: ``scores`` is a float32 tensor ``[B]``; ``details`` holds per-image
    extras (tensors of length B or lists of length B), e.g. the raw logit before normalisation.

    Group rewards also give ``group_details``: per group id of the call (the ``groups`` passed to
    ``forward``), facts about the whole group as plain values, e.g. ``{0: {"people": 3, "shares": [...],
    "note": "1 of 4 images without a measured face"}}``. ``note`` is for people and does not name the
    group: the harness names it by its key values (the results table's ``<reward>.group_<key>`` columns
    and the per-group table; see `rewardbench.groups.group_table`).

    Example:
        >>> import torch
        >>> out = RewardOutput(torch.tensor([1.0, 1.0, 2.0]), group_details={0: {"size": 2}, 1: {"size": 1}})
        >>> out.group_values("size", torch.tensor([0, 0, 1]))
        [2, 2, 1]
    """

    scores: torch.Tensor
    details: dict[str, Any] = field(default_factory=dict)
    group_details: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.scores, torch.Tensor):
            self.scores = torch.as_tensor(self.scores, dtype=torch.float32)
        if self.scores.ndim != 1:
            raise ValueError(f"RewardOutput.scores must be 1-D [B], got shape {tuple(self.scores.shape)}")
        if self.scores.dtype != torch.float32:
            self.scores = self.scores.float()

    def group_values(self, key: str, groups: torch.Tensor) -> list[Any]:
        """Group detail ``key`` for each image of ``groups`` (None where its group has no such detail)."""
        return [self.group_details.get(int(g), {}).get(key) for g in groups.detach().cpu().tolist()]
