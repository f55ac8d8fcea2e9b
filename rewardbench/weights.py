"""Weight resolution and safe checkpoint loading, in one place.

A reward's weights come from (in this order):
  1. an explicit override: ``load_reward(..., weights=PATH_OR_HUB_ID_OR_URL)`` / ``--weights``;
  2. a local copy under ``$REWARDBENCH_WEIGHTS`` (``$REWARDBENCH_WEIGHTS/<reward>/<filename>`` or
     ``$REWARDBENCH_WEIGHTS/<filename>``);
  3. the sources the reward's spec declares (hub repository, URL, bundled file).

Checkpoints load as safetensors when possible, otherwise only through
``torch.load(weights_only=True, map_location=...)`` — never arbitrary pickles, never
``trust_remote_code``. Offline, a missing weight fails at once (a 3-second reachability probe at
most) with a message naming what was looked for, where, and how to point at a local copy.

Example:
    >>> from rewardbench.spec import WeightSource
    >>> src = WeightSource("file", "/nonexistent/head.pth")
    >>> try:
    ...     resolve_weights([src], reward="demo")
    ... except WeightsNotFoundError as e:
    ...     print("not found")
    not found
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .provenance import NO_WEIGHTS, NOT_LOADED, Provenance, describe, kinds
from .spec import WeightSource

__all__ = ["Provenance", "NO_WEIGHTS", "NOT_LOADED", "describe", "kinds", "resolve_weights", "ResolvedWeights",
           "WeightsNotFoundError", "CheckpointMismatchError", "load_state_dict", "load_into", "weights_stamp",
           "bundled_path", "url_digest", "digest_mismatch", "sha256_of", "cache_dir"]

ENV_WEIGHTS_DIR = "REWARDBENCH_WEIGHTS"
_PROBE_TIMEOUT_S = 3.0


class WeightsNotFoundError(FileNotFoundError):
    """Weights could not be found locally and could not be downloaded."""


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's keys do not match the module's parameters."""


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path  # a file, or a directory (hub snapshot)
    provenance: Provenance  # recorded in results

    def __str__(self) -> str:
        return str(self.provenance)


def _provenance(src: WeightSource, checked: bool = False) -> Provenance:
    """``src`` as found; ``checked``: its published digest was compared with the file."""
    where = src.location + (f"/{src.filename}" if src.filename else "") + (f"@{src.revision}" if src.revision else "")
    return Provenance(src.kind, where, (src.sha256 or src.md5) if checked else None)


def cache_dir() -> Path:
    d = Path(os.environ.get("REWARDBENCH_CACHE", Path.home() / ".cache" / "rewardbench"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@functools.cache
def _reachable(host: str, port: int = 443) -> bool:
    """Can we open a TCP connection to ``host`` quickly? Cached per process."""
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _hub_offline() -> bool:
    """True when the hub is switched off (``HF_HUB_OFFLINE``) or its endpoint (``HF_ENDPOINT``: host and
    port) does not answer the reachability probe."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return True
    endpoint = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    return not _reachable(endpoint.hostname or "huggingface.co", port)


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def digest_mismatch(path: str | os.PathLike, src: WeightSource) -> str | None:
    """Why the file at ``path`` is not what ``src`` publishes (its sha256, a published prefix of it, or
    its md5), or None when it matches or nothing is published."""
    if src.sha256 and not sha256_of(path).startswith(src.sha256.lower()):
        return f"sha256 mismatch (expected {src.sha256}{'...' if len(src.sha256) < 64 else ''})"
    if src.md5 and sha256_of(path, algorithm="md5") != src.md5.lower():
        return f"md5 mismatch (expected {src.md5})"
    return None


def url_digest(url: str) -> str | None:
    """The sha256 (or the prefix of it) a download URL publishes in its own path: OpenAI's CLIP URLs
    carry the full digest as a folder (openai/CLIP ``clip.py`` checks it), open_clip's release files end
    their names with its first hex digits (open_clip ``pretrained.py`` checks that prefix).

    Example:
        >>> url_digest("https://openaipublic.azureedge.net/clip/models/" + "ab" * 32 + "/ViT-B-32.pt")[:6]
        'ababab'
        >>> url_digest("https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights/"
        ...            "vit_b_32-quickgelu-laion400m_e32-46683a32.pt")
        '46683a32'
    """
    import re

    parts = urllib.parse.urlparse(url).path.split("/")
    for part in parts[:-1]:
        if re.fullmatch(r"[0-9a-f]{64}", part):
            return part
    tail = Path(parts[-1]).stem.rsplit("-", 1)[-1]
    return tail if "mlfoundations/open_clip" in url and re.fullmatch(r"[0-9a-f]{8,64}", tail) else None


def _looks_like_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors", ".bin", ".ckpt", ".onnx")


def local_path(value: str | os.PathLike) -> Path | None:
    """``value`` as a local file path (absolute) when it names one, or None when it is a name, a hub id or a URL.

    A path is what exists on disk, or what can only be a path: it starts with ``/``, ``./``, ``../`` or ``~``, or
    ends with a checkpoint suffix (`CHECKPOINT_SUFFIXES`). A reward option that takes either a model name or a
    checkpoint (``--config detection-score:model=/models/yolov8x.pt``) resolves a path to that file, never to a
    download of its name.

    Example:
        >>> local_path("yolov8n") is None, local_path("org/model") is None, local_path("https://x.org/a.pt") is None
        (True, True, True)
        >>> str(local_path("/models/yolov8x.pt")), local_path("ckpt/yolov8s.pt").is_absolute()
        ('/models/yolov8x.pt', True)
    """
    if isinstance(value, os.PathLike):
        return Path(value).expanduser().absolute()
    s = str(value)
    if not s or _looks_like_url(s):
        return None
    p = Path(s).expanduser()
    if s.startswith(("/", "./", "../", "~", ".\\", "..\\")) or s.lower().endswith(CHECKPOINT_SUFFIXES) or p.exists():
        return p.absolute()
    return None


def _looks_like_hub_id(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(parts) and not s.startswith((".", "/", "~")) and not Path(s).exists()


def _try_hub(src: WeightSource, attempts: list[str]) -> ResolvedWeights | None:
    from huggingface_hub import hf_hub_download, snapshot_download  # light, but only needed here

    where = f"Hugging Face hub {src.location}" + (f" file {src.filename}" if src.filename else "")
    kwargs: dict[str, Any] = {"repo_id": src.location, "revision": src.revision}
    fetch = (lambda **kw: hf_hub_download(filename=src.filename, **kw)) if src.filename else snapshot_download
    try:  # the local hub cache first: works offline
        return ResolvedWeights(Path(fetch(local_files_only=True, **kwargs)), _provenance(src))
    except Exception:
        pass
    if _hub_offline():
        attempts.append(f"{where}: not in the local hub cache, and the hub is unreachable (offline)")
        return None
    try:
        return ResolvedWeights(Path(fetch(**kwargs)), _provenance(src))
    except Exception as e:  # network, auth, missing file
        attempts.append(f"{where}: download failed ({type(e).__name__}: {e})")
        return None


def _try_url(src: WeightSource, reward: str, attempts: list[str]) -> ResolvedWeights | None:
    name = src.filename or Path(urllib.parse.urlparse(src.location).path).name or "weights.bin"
    target = cache_dir() / reward / name
    if target.is_file():  # checked when it was downloaded
        return ResolvedWeights(target, _provenance(src, checked=True))
    parsed = urllib.parse.urlparse(src.location)
    host = parsed.hostname or ""
    if not _reachable(host, parsed.port or (80 if parsed.scheme == "http" else 443)):
        attempts.append(f"URL {src.location}: not cached at {target}, and {host} is unreachable (offline)")
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    try:
        torch.hub.download_url_to_file(src.location, str(tmp), progress=True)
    except Exception as e:
        attempts.append(f"URL {src.location}: download failed ({type(e).__name__}: {e})")
        return None
    bad = digest_mismatch(tmp, src)
    if bad:
        tmp.unlink(missing_ok=True)
        attempts.append(f"URL {src.location}: {bad}")
        return None
    tmp.replace(target)
    return ResolvedWeights(target, _provenance(src, checked=True))


def _try_local(path: Path, label: str, attempts: list[str], src: WeightSource | None = None,
               bundled: WeightSource | None = None) -> ResolvedWeights | None:
    path = path.expanduser()
    if path.exists():
        bad = digest_mismatch(path, src) if src is not None and path.is_file() else None
        if bad:
            attempts.append(f"{label} {path}: {bad}")
            return None
        if bundled is not None:
            return ResolvedWeights(path, _provenance(bundled))
        checked = src is not None and path.is_file() and bool(src.sha256 or src.md5)
        return ResolvedWeights(path, Provenance("file", str(path), (src.sha256 or src.md5) if checked else None))
    attempts.append(f"{label} {path}: does not exist")
    return None


def bundled_path(src: WeightSource) -> Path:
    """``location`` = "package" or "package:relative/path"."""
    import importlib.util

    pkg, _, rel = src.location.partition(":")
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return Path(f"<package {pkg} not installed>")
    root = Path(list(spec.submodule_search_locations)[0])
    return root / (rel or src.filename or "")


def resolve_weights(sources: Sequence[WeightSource], *, reward: str,
                    override: str | os.PathLike | None = None) -> ResolvedWeights:
    """Find a reward's weights; raise `WeightsNotFoundError` listing every place tried."""
    attempts: list[str] = []
    if override is not None:
        o = str(override)
        if Path(o).expanduser().exists():
            found = _try_local(Path(o), "--weights", attempts)
        elif _looks_like_url(o):
            found = _try_url(WeightSource("url", o), reward, attempts)
        elif _looks_like_hub_id(o):
            fname = next((s.filename for s in sources if s.kind == "hub"), None)
            found = _try_hub(WeightSource("hub", o, filename=fname), attempts)
        else:
            attempts.append(f"--weights {o}: not an existing path, a URL or a hub id (org/name)")
            found = None
        if found is None:
            raise WeightsNotFoundError(_not_found_message(reward, attempts))
        return found

    root = os.environ.get(ENV_WEIGHTS_DIR)
    if root:
        for src in sources:
            if src.kind == "file" and Path(src.location).is_absolute():  # a file named in full is that file
                continue
            fname = src.filename or Path(urllib.parse.urlparse(src.location).path).name
            for cand in (Path(root) / reward / fname, Path(root) / fname) if fname else (Path(root) / reward,):
                if cand.exists():
                    return ResolvedWeights(cand, Provenance("file", str(cand)))
        attempts.append(f"${ENV_WEIGHTS_DIR}={root}: no {reward}/<file> or <file> for the sources below")

    for src in sources:
        if src.kind == "hub":
            found = _try_hub(src, attempts)
        elif src.kind == "url":
            found = _try_url(src, reward, attempts)
        elif src.kind == "file":
            p = Path(src.location)
            if not p.is_absolute() and root:
                p = Path(root) / p
            found = _try_local(p, "file", attempts, src)
        elif src.kind == "bundled":
            found = _try_local(bundled_path(src), f"bundled in {src.location.split(':')[0]}", attempts, bundled=src)
        else:  # pragma: no cover - RewardSpec validates kinds
            found = None
        if found is not None:
            return found
    if not sources:
        attempts.append("the reward declares no weight source")
    raise WeightsNotFoundError(_not_found_message(reward, attempts))


def _not_found_message(reward: str, attempts: Iterable[str]) -> str:
    lines = "\n  - ".join(attempts)
    # the CLI names the reward in --weights (callers pass the spec's canonical name); internal parts
    # ("clip:ViT-L-14", a reward's backbone) have no flag of their own
    cli = f" (CLI: --weights {reward}=PATH)" if ":" not in reward else " (CLI: --weights REWARD=PATH)"
    return (
        f"weights for reward {reward!r} not found.\n  Looked for:\n  - {lines}\n"
        f"  Fix: pass weights=PATH{cli} pointing at a local copy, or put the file under "
        f"${ENV_WEIGHTS_DIR}/{reward}/, or run online once to fill the cache. "
        f"pretrained=False (CLI: --random-weights) gives random weights for testing."
    )


# ----------------------------------------------------------------------------------------------
# loading


def load_state_dict(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a checkpoint file as a flat ``{key: tensor}`` dict, safely.

    ``.safetensors`` via safetensors; anything else via ``torch.load(weights_only=True)`` with
    ``map_location`` (so a checkpoint saved on a CUDA device loads on the CPU). Common wrappers
    (``{"state_dict": ...}``, ``{"model": ...}``) are unwrapped.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin")) + sorted(path.glob("*.pt*"))
        if not files:
            raise WeightsNotFoundError(f"{path}: directory holds no .safetensors/.bin/.pt/.pth checkpoint")
        sd: dict[str, torch.Tensor] = {}
        for f in files:
            sd.update(load_state_dict(f, map_location))
        return sd
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=str(map_location))
    try:
        obj = torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointMismatchError(
            f"{path}: cannot be loaded safely with torch.load(weights_only=True) ({type(e).__name__}: {e}). "
            "Convert it to safetensors; arbitrary pickles are never executed."
        ) from None
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise CheckpointMismatchError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_into(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True,
              source: str = "checkpoint") -> None:
    """``module.load_state_dict`` with an error that lists the missing and unexpected keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shape_bad = sorted(k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
    if shape_bad or (strict and (missing or unexpected)):
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)" if len(keys) > 20 else "") if keys else "none"
        shapes = "; ".join(f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                           for k in shape_bad[:10])
        raise CheckpointMismatchError(
            f"{source} does not match {type(module).__name__}: missing keys: {show(missing)}; "
            f"unexpected keys: {show(unexpected)}" + (f"; shape mismatches: {shapes}" if shape_bad else "")
        )
    module.load_state_dict(dict(state_dict), strict=strict)


def weights_stamp(provenance: Iterable[Provenance]) -> dict[str, list]:
    """Size and modification time of every local file a reward's provenance names (``file`` and
    ``bundled`` parts): part of a scoring run's fingerprint, so that weights replaced on disk under the
    same name are not mixed with results of the old ones.

    Example:
        >>> weights_stamp([NO_WEIGHTS])
        {}
    """
    out: dict[str, list] = {}
    for p in provenance:
        if p.kind not in ("file", "bundled"):
            continue
        path = Path(p.location) if p.kind == "file" else bundled_path(WeightSource("bundled", p.location))
        try:
            st = path.stat()
            out[f"{p.kind}:{p.location}"] = [st.st_size, st.st_mtime_ns]
        except OSError:
            out[f"{p.kind}:{p.location}"] = [None]
    return out
