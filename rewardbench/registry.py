"""The reward registry: one source of truth for names, aliases, specs and builders.

Three ways in:
  * ``@register_reward`` on a `RewardModel` subclass or a factory function, in a module of the
    ``rewards`` package (the zoo). The zoo's modules are imported on the first registry query,
    never by ``import rewardbench``; they import heavy libraries (transformers, open_clip, ...)
    only inside builders, so listing the zoo stays light.
  * ``register_lazy(name, "module:attr")``: resolved on first use.
  * the entry-point group ``rewardbench.rewards`` (``name = "module:attr"``) for third-party packages.

Example:
    >>> import rewardbench
    >>> "jpeg-compressibility" in [s.name for s in rewardbench.list_rewards(category="baseline")]
    True
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

from .spec import CATEGORIES, RewardSpec

ENTRY_POINT_GROUP = "rewardbench.rewards"
ZOO_PACKAGE = "rewardbench.rewards"


class UnknownRewardError(LookupError):
    def __str__(self) -> str:  # LookupError would repr() the message
        return str(self.args[0]) if self.args else ""


class DuplicateRewardError(ValueError):
    pass


@dataclass
class _Entry:
    name: str
    target: Any  # class, factory, or "module:attr" string
    aliases: tuple[str, ...] = ()
    spec: RewardSpec | None = None  # for factories and spec overrides
    origin: str = "zoo"

    def load_target(self) -> Any:
        if isinstance(self.target, str):
            mod, _, attr = self.target.partition(":")
            try:
                obj = importlib.import_module(mod)
                for part in attr.split("."):
                    obj = getattr(obj, part)
            except (ImportError, AttributeError) as e:
                raise UnknownRewardError(f"reward {self.name!r}: cannot import {self.target!r} ({e})") from e
            self.target = obj
        return self.target

    def resolve_spec(self) -> RewardSpec:
        if self.spec is None:
            target = self.load_target()
            spec = getattr(target, "spec", None)
            if not isinstance(spec, RewardSpec):
                raise TypeError(f"reward {self.name!r}: {target!r} has no RewardSpec `spec` attribute")
            if spec.name != self.name:
                spec = spec.replace(name=self.name)
            self.spec = spec
        return self.spec


@dataclass
class Registry:
    """Names, aliases, specs and builders of rewards: the zoo (imported on the first query), lazy
    ``"module:attr"`` entries and entry-point plugins. `REGISTRY` is the process-wide one; build your
    own for tests.

    Example:
        >>> reg = Registry(_discovered=True)  # an empty registry that does not scan the zoo
        >>> reg.add("brightness", "mypkg.rewards:Brightness", aliases=("bright",))
        >>> reg.canonical("Bright"), reg.names()
        ('brightness', ['brightness'])
    """

    _entries: dict[str, _Entry] = field(default_factory=dict)
    _aliases: dict[str, str] = field(default_factory=dict)
    _discovered: bool = False
    _discovering: bool = False
    broken: dict[str, str] = field(default_factory=dict)  # module -> import error, shown on unknown names

    # -- registration -----------------------------------------------------------------------
    def add(self, name: str, target: Any, aliases: Iterable[str] = (), spec: RewardSpec | None = None,
            origin: str = "zoo") -> None:
        aliases = tuple(a for a in aliases if a != name)
        existing = self._entries.get(name)
        if existing is not None:
            if existing.target is target or (isinstance(target, str) and target == existing.target):
                return
            if isinstance(existing.target, str) and existing.target.replace(":", ".") == _describe(target):
                existing.target = target  # a lazy entry's module registering its own target on import
                return
            raise DuplicateRewardError(f"reward name {name!r} is already registered (by {_describe(existing.target)})")
        for a in (name, *aliases):
            if a in self._aliases and self._aliases[a] != name:
                raise DuplicateRewardError(f"alias {a!r} of {name!r} is already an alias of {self._aliases[a]!r}")
            if a != name and a in self._entries:
                raise DuplicateRewardError(f"alias {a!r} of {name!r} is already a reward name")
        self._entries[name] = _Entry(name, target, aliases, spec, origin)
        for a in aliases:
            self._aliases[a] = name

    def remove(self, name: str) -> None:
        entry = self._entries.pop(name)
        for a in entry.aliases:
            self._aliases.pop(a, None)

    # -- discovery --------------------------------------------------------------------------
    def _discover(self) -> None:
        if self._discovered or self._discovering:
            return
        self._discovering = True
        try:
            for _mod in discover_modules(ZOO_PACKAGE, self.broken):
                pass  # importing a zoo module registers its rewards
            self._load_entry_points()
            self._discovered = True
        finally:
            self._discovering = False

    def _load_entry_points(self) -> None:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._entries:
                continue
            self.add(ep.name, ep.value, origin="plugin")

    def refresh(self) -> None:
        """Look again for entry-point plugins (e.g. after installing one)."""
        self._discover()
        self._load_entry_points()

    # -- queries ----------------------------------------------------------------------------
    def canonical(self, name: str) -> str:
        self._discover()
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        folded = {k.lower().replace("_", "-"): k for k in [*self._entries, *self._aliases]}
        key = name.lower().replace("_", "-")
        if key in folded:
            return self.canonical(folded[key])
        msg = f"unknown reward {name!r}." + did_you_mean(name, [*self._entries, *self._aliases], self._aliases)
        msg += " `rewardbench list` shows them all."
        if self.broken:
            msg += " Some reward modules failed to import: " + "; ".join(f"{m}: {e}" for m, e in self.broken.items())
        raise UnknownRewardError(msg)

    def entry(self, name: str) -> _Entry:
        return self._entries[self.canonical(name)]

    def spec(self, name: str) -> RewardSpec:
        return self.entry(name).resolve_spec()

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def specs(self, category: str | None = None) -> list[RewardSpec]:
        if category is not None and category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; choose from {', '.join(CATEGORIES)}")
        out = []
        for n in self.names():
            try:
                s = self.spec(n)
            except Exception as e:
                self.broken[n] = f"{type(e).__name__}: {e}"
                continue
            if category is None or s.category == category:
                out.append(s)
        return out

    def build(self, name: str, **cfg: Any):
        """The architecture with random (or no) weights; no download happens here."""
        from .model import RewardModel

        entry = self.entry(name)
        spec = entry.resolve_spec()
        target = entry.load_target()
        model = target(**cfg)
        if not isinstance(model, RewardModel):
            raise TypeError(f"reward {name!r}: {_describe(target)} returned {type(model).__name__}, not a RewardModel")
        if model.spec is not spec:
            model.spec = spec  # instance attribute: a factory may serve several names
        return model


def discover_modules(package: str, broken: dict[str, str] | None = None) -> Iterator[ModuleType]:
    """Import every public module (name not starting with ``_``) of ``package``, in name order, and
    yield it: how the zoo (``rewardbench.rewards``) and the prompt sets (``rewardbench.benchmarks.prompt_sets``)
    are found. A module that fails to import is recorded in ``broken`` (and warned about) instead of hiding
    the rest; without ``broken`` the error propagates.

    Example:
        >>> names = [m.__name__ for m in discover_modules("rewardbench.benchmarks.prompt_sets")]
        >>> "rewardbench.benchmarks.prompt_sets.geneval" in names, names == sorted(names)
        (True, True)
    """
    try:
        root = importlib.import_module(package)
    except ImportError as e:
        if broken is None:
            raise
        broken[package] = str(e)
        return
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        modname = f"{package}.{info.name}"
        try:
            mod = importlib.import_module(modname)
        except Exception as e:  # one broken family must not hide the rest
            if broken is None:
                raise
            broken[modname] = f"{type(e).__name__}: {e}"
            warnings.warn(f"rewardbench: could not import {modname}: {e}", stacklevel=3)
            continue
        yield mod


def did_you_mean(name: str, known: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
    """`` Did you mean 'x' or 'y'?`` for the closest known names (aliases mapped to their canonical
    name, each once), or an empty string.

    Example:
        >>> did_you_mean("vendy", ["vendi", "nsfw"])
        " Did you mean 'vendi'?"
    """
    aliases = aliases or {}
    close = difflib.get_close_matches(name, list(known), n=6, cutoff=0.5)
    close = list(dict.fromkeys(aliases.get(c, c) for c in close))[:3]
    return (" Did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""


def _describe(target: Any) -> str:
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


REGISTRY = Registry()


def register_reward(name: str | None = None, *, aliases: Iterable[str] = (), spec: RewardSpec | None = None,
                    registry: Registry | None = None) -> Callable[[Any], Any]:
    """Register a `RewardModel` subclass or a factory returning one.

    The name defaults to ``spec.name``; aliases from the spec and from the decorator are merged.
    A factory takes its spec from ``spec=``. Registering a taken name raises `DuplicateRewardError`.

    Example:
        >>> from rewardbench import RewardModel, RewardOutput, RewardSpec, register_reward
        >>> from rewardbench.registry import Registry
        >>> reg = Registry(_discovered=True)
        >>> @register_reward(registry=reg)
        ... class Darkness(RewardModel):
        ...     spec = RewardSpec(name="darkness", category="baseline", aliases=("dark",))
        ...     def score(self, pixels, prompts, groups):
        ...         return RewardOutput(1 - pixels.mean(dim=(1, 2, 3)))
        >>> reg.canonical("dark")
        'darkness'
    """
    reg = registry or REGISTRY

    def deco(target: Any) -> Any:
        s = spec or getattr(target, "spec", None)
        if not isinstance(s, RewardSpec):
            raise TypeError(f"register_reward: {_describe(target)} needs a RewardSpec "
                            "(class attribute `spec` or spec=...)")
        n = name or s.name
        if s.name != n:
            s = s.replace(name=n)
        if spec is not None and not isinstance(target, type):
            target.spec = s
        reg.add(n, target, aliases=(*s.aliases, *aliases), spec=s if spec is not None or name else None)
        return target

    return deco


def register_lazy(name: str, target: str, aliases: Iterable[str] = (), registry: Registry | None = None) -> None:
    """Register ``"module:attr"`` without importing it now."""
    if ":" not in target:
        raise ValueError(f"lazy target must look like 'module:attr', got {target!r}")
    (registry or REGISTRY).add(name, target, aliases=aliases)


def list_rewards(category: str | None = None) -> list[RewardSpec]:
    """Specs of every registered reward (optionally one category), sorted by name.

    Example:
        >>> import rewardbench
        >>> [s.name for s in rewardbench.list_rewards(category="baseline")]
        ['jpeg-compressibility', 'jpeg-incompressibility']
    """
    return REGISTRY.specs(category)


def get_spec(name: str) -> RewardSpec:
    """The `RewardSpec` of reward ``name`` (a name or an alias), without building the model.

    Example:
        >>> import rewardbench
        >>> spec = rewardbench.get_spec("jpeg_compressibility")  # an alias
        >>> spec.name, spec.category, spec.higher_is_better, spec.granularity
        ('jpeg-compressibility', 'baseline', True, 'image')
    """
    return REGISTRY.spec(name)
