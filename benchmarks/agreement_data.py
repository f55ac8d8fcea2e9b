"""Human-preference datasets for the agreement benchmark: one documented schema, local copies, hub loaders.

The schema (a ``.jsonl``, ``.json``, ``.parquet`` or ``.csv`` file; one row per item, i.e. one prompt with
two or more images judged together):

  ============  =================================================================================
  ``prompt``    the text prompt (str)
  ``images``    list of images: paths (relative to the file's folder, or absolute) or raw bytes.
                CSV: columns ``image_0``, ``image_1``, ... instead
  ``choice``    index of the image people preferred (pairs), or null / -1 for a tie
  ``ranking``   or: one rank per image, 1 = best; equal ranks are ties
  ``ratings``   or: one rating per image (higher = better), e.g. GenAI-Bench's mean of 1-5 scores
  ``tie``       optional bool (pairs): people judged the two images equal
  ``category``  optional: for per-category breakdowns
  ``id``        optional: an item id (default: the row number)
  ============  =================================================================================

Exactly one of ``choice``, ``ranking`` or ``ratings`` carries the human judgement. Items are converted to
utilities (``human``: higher = preferred; equal = tie) so that every protocol reads one shape.

Hub datasets (`DATASETS`) load through ``datasets``/``huggingface_hub`` from their official ids, or from a
local copy (``path=``): a file in the schema above, or the official release layout named in each entry.
Offline, a hub load fails within seconds with what was looked for and how to point at a local copy.

    >>> import json, pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> row = {"prompt": "a cat", "images": ["a.png", "b.png"], "choice": 1, "category": "animals"}
    >>> _ = (d / "prefs.jsonl").write_text(json.dumps(row) + "\\n")
    >>> s = load_preference_file(d / "prefs.jsonl")
    >>> s.items[0].human.tolist(), s.items[0].images[1].endswith("b.png"), s.kind
    ([0.0, 1.0], True, 'choice')
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_EXTENSIONS = (".jsonl", ".json", ".parquet", ".csv")


class DatasetUnavailableError(FileNotFoundError):
    """A preference dataset is neither local nor reachable (the message says where it looked)."""


@dataclass
class Item:
    """One judged prompt: its images and the human utilities (higher = preferred)."""

    id: str
    prompt: str
    images: list  # paths, PIL images (possibly lazy) or arrays
    human: np.ndarray
    category: str | None = None


@dataclass
class PreferenceSet:
    """A loaded dataset: items plus where they came from and the protocol their numbers are quoted under."""

    name: str
    split: str
    items: list[Item]
    kind: str  # "choice" | "ranking" | "ratings"
    source: str
    protocol: str = "drop-ties"
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)


def _open_image(x: Any, root: Path | None) -> Any:
    """Paths resolve against the schema file's folder; bytes become lazily decoded PIL images."""
    if isinstance(x, dict) and ("bytes" in x or "path" in x):  # a `datasets` Image feature left undecoded
        x = x.get("bytes") or x.get("path")
    if isinstance(x, (bytes, bytearray)):
        from PIL import Image

        return Image.open(io.BytesIO(bytes(x)))
    if isinstance(x, str) and root is not None and not os.path.isabs(x):
        return str(root / x)
    return x


def _as_list(v: Any) -> list | None:
    if v is None or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, str):
        v = json.loads(v)
    return list(np.asarray(v).tolist()) if not isinstance(v, list) else v


def item_from_row(row: dict, i: int, root: Path | None = None) -> tuple[Item, str]:
    """One schema row -> (`Item`, kind). Raises ValueError naming the row on anything malformed."""
    images = _as_list(row.get("images"))
    if images is None:
        images = [row[k] for k in sorted((k for k in row if k.startswith("image_") and k[6:].isdigit()),
                                         key=lambda k: int(k[6:])) if row[k] is not None]
    if len(images) < 2:
        raise ValueError(f"row {i}: needs two or more images, got {len(images)}")
    k = len(images)
    ranking, ratings = _as_list(row.get("ranking")), _as_list(row.get("ratings"))
    choice = row.get("choice")
    tie = bool(row.get("tie") or False) or choice in (-1, "tie")
    if ranking is not None:
        human, kind = -np.asarray(ranking, float), "ranking"
    elif ratings is not None:
        human, kind = np.asarray(ratings, float), "ratings"
    elif tie or (choice is not None and not (isinstance(choice, float) and choice != choice)):
        human, kind = np.zeros(k), "choice"
        if tie:
            human[:] = 0.5
        else:
            c = int(choice)
            if not 0 <= c < k:
                raise ValueError(f"row {i}: choice {c} is not an index into its {k} images")
            human[c] = 1.0
    else:
        raise ValueError(f"row {i}: no human judgement (give one of choice, ranking, ratings)")
    if len(human) != k:
        raise ValueError(f"row {i}: {len(human)} ranks/ratings for {k} images")
    cat = row.get("category")
    item = Item(str(row.get("id", i)), str(row.get("prompt") or ""), [_open_image(x, root) for x in images],
                human, None if cat is None or cat != cat else str(cat))
    return item, kind


def items_from_rows(rows: Iterable[dict], root: Path | None = None, limit: int | None = None
                    ) -> tuple[list[Item], str]:
    items, kinds = [], set()
    for i, row in enumerate(rows):
        if limit is not None and i >= limit:
            break
        item, kind = item_from_row(dict(row), i, root)
        items.append(item)
        kinds.add(kind)
    if not items:
        raise ValueError("no items")
    return items, (kinds.pop() if len(kinds) == 1 else "mixed")


def _read_rows(path: Path) -> list[dict]:
    ext = path.suffix.lower()
    if ext == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if ext == ".json":
        data = json.loads(path.read_text())
        return data["pairs"] if isinstance(data, dict) and "pairs" in data else data
    import pandas as pd

    df = pd.read_parquet(path) if ext == ".parquet" else pd.read_csv(path)
    return df.to_dict("records")


def load_preference_file(path: str | os.PathLike, *, name: str | None = None, split: str = "local",
                         protocol: str | None = None, limit: int | None = None) -> PreferenceSet:
    """A preference set from a file in the documented schema."""
    p = Path(path)
    if p.is_dir():
        found = [f for f in sorted(p.iterdir()) if f.suffix.lower() in SCHEMA_EXTENSIONS]
        if len(found) != 1:
            raise DatasetUnavailableError(f"{p}: expected one {'/'.join(SCHEMA_EXTENSIONS)} file in the schema, "
                                          f"found {[f.name for f in found]}")
        p = found[0]
    if not p.is_file():
        raise DatasetUnavailableError(f"{p}: no such preference file")
    items, kind = items_from_rows(_read_rows(p), p.parent, limit)
    return PreferenceSet(name or p.stem, split, items, kind, f"file {p}", protocol or "drop-ties")


# -- the hub -------------------------------------------------------------------------------------------


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """False when ``HF_HUB_OFFLINE`` is set or the endpoint does not answer within ``timeout`` seconds."""
    if _offline_env():
        return False
    url = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_mode():
    """``datasets`` and ``huggingface_hub`` read ``HF_HUB_OFFLINE`` once, at import; honour its value now, so a
    cached copy is used (and nothing is requested) whenever it is set, however early they were imported."""
    import datasets.config as dcfg
    import huggingface_hub.constants as hcfg

    saved = (hcfg.HF_HUB_OFFLINE, dcfg.HF_HUB_OFFLINE, dcfg.HF_DATASETS_OFFLINE)
    if _offline_env():
        hcfg.HF_HUB_OFFLINE = dcfg.HF_HUB_OFFLINE = dcfg.HF_DATASETS_OFFLINE = True
    try:
        yield
    finally:
        hcfg.HF_HUB_OFFLINE, dcfg.HF_HUB_OFFLINE, dcfg.HF_DATASETS_OFFLINE = saved


@dataclass(frozen=True)
class DatasetInfo:
    """Where a human-preference dataset lives and how its numbers are quoted."""

    name: str
    hub_id: str
    default_split: str
    splits: tuple[str, ...]
    protocol: str
    local_layout: str  # the official release layout `path=` also accepts, besides the schema
    paper: str
    loader: Callable[..., tuple[list[Item], str]]
    config: str | None = None
    notes: str = ""


def _unavailable(info: DatasetInfo, split: str, reason: str) -> DatasetUnavailableError:
    return DatasetUnavailableError(
        f"dataset {info.name!r} (split {split!r}) is not available.\n  Looked for:\n"
        f"  - hub: {info.hub_id}{f' (config {info.config})' if info.config else ''}: {reason}\n"
        f"  Fix: pass --data PATH (Python: path=) pointing at a local copy: a .jsonl/.parquet/.csv in the "
        f"documented schema (rewardbench.benchmarks.agreement_data), or {info.local_layout}; or run once "
        f"with the hub reachable to fill the cache (then HF_HUB_OFFLINE=1 reuses it).")


def _load_hub_dataset(info: DatasetInfo, split: str):
    if not _offline_env() and not _hub_reachable():
        raise _unavailable(info, split, "the hub is unreachable (offline); a cached copy is used only with "
                                        "HF_HUB_OFFLINE=1")
    import datasets

    try:
        with _hub_mode():
            return datasets.load_dataset(info.hub_id, info.config, split=split,
                                         cache_dir=os.environ.get("HF_DATASETS_CACHE"))
    except Exception as e:  # noqa: BLE001 - datasets raises many types; the message is what matters
        raise _unavailable(info, split, f"{type(e).__name__}: {str(e)[:300]}") from None


def _hub_file(info: DatasetInfo, split: str, filename: str) -> Path:
    if not _offline_env() and not _hub_reachable():
        raise _unavailable(info, split, f"{filename}: the hub is unreachable (offline)")
    from huggingface_hub import hf_hub_download

    try:
        with _hub_mode():
            return Path(hf_hub_download(info.hub_id, filename, repo_type="dataset",
                                        cache_dir=os.environ.get("HF_HUB_CACHE")))
    except Exception as e:  # noqa: BLE001
        raise _unavailable(info, split, f"{filename}: {type(e).__name__}: {str(e)[:300]}") from None


def _pickapic(ds, limit):
    rows = ({"id": r.get("ranking_id", i), "prompt": r["caption"], "images": [r["jpg_0"], r["jpg_1"]],
             "choice": None if r["label_0"] == 0.5 else (0 if r["label_0"] == 1 else 1),
             "tie": r["label_0"] == 0.5} for i, r in enumerate(ds) if r.get("has_label", True))
    return items_from_rows(rows, None, limit)


def _group_ranked(records: Iterable[dict], key: str, limit) -> tuple[list[Item], str]:
    """ImageRewardDB rows (one image each) -> one item per prompt with its ranks."""
    groups: dict[str, dict] = {}
    for r in records:
        k = str(r[key])
        if k not in groups and limit is not None and len(groups) == limit:
            break
        g = groups.setdefault(k, {"id": k, "prompt": r["prompt"], "images": [], "ranking": [],
                                  "category": r.get("classification")})
        g["images"].append(r["image"])
        g["ranking"].append(r["rank"])
    return items_from_rows(groups.values(), None, limit)


def _imagereward(ds, limit):
    return _group_ranked(ds, "prompt_id", limit)


def _mmrb2(ds, limit):
    rows = ({"id": r["pair_id"], "prompt": r["prompt_text"],
             "images": [r["response_a_images"][0], r["response_b_images"][0]],
             "choice": 0 if r["chosen"] == "A" else 1, "category": r.get("prompt_source")} for r in ds)
    return items_from_rows(rows, None, limit)


GENAI_MODELS = ("DALLE_3", "DeepFloyd_I_XL_v1", "Midjourney_6", "SDXL_2_1", "SDXL_Base", "SDXL_Turbo")


def _genai(ds, limit):
    def rating(r, m):
        v = r.get(f"{m}_HumanRating")
        v = (r.get("HumanRatings") or {}).get(m) if v is None else v
        return float(np.mean(_as_list(v)))

    rows = ({"id": r.get("id", r.get("Index", i)), "prompt": r.get("prompt", r.get("Prompt")),
             "images": [r[m] for m in GENAI_MODELS], "ratings": [rating(r, m) for m in GENAI_MODELS]}
            for i, r in enumerate(ds))
    return items_from_rows(rows, None, limit)


def _official_json(path: Path, limit) -> tuple[list[Item], str]:
    """The JSON layouts of the official releases (HPDv2 ``test.json``, ImageReward ``data/test.json``, HPDv3
    ``test.json``), images resolved against the JSON's folder."""
    data = json.loads(path.read_text())
    rows = []
    for i, r in enumerate(data[:limit] if limit else data):
        if "image_path" in r:  # HPDv2: rank, lower = better
            rows.append({"id": i, "prompt": r["prompt"], "images": r["image_path"], "ranking": r["rank"]})
        elif "generations" in r:  # ImageReward: ranking, 1 = best
            rows.append({"id": r.get("id", i), "prompt": r["prompt"], "images": r["generations"],
                         "ranking": r["ranking"]})
        elif "path1" in r:  # HPDv3 pairs: path1 is the preferred image (HPSv3 README)
            rows.append({"id": i, "prompt": r["prompt"], "images": [r["path1"], r["path2"]], "choice": 0})
        else:
            rows.append(r)
    return items_from_rows(rows, path.parent, None)


def _hpd_hub(info: DatasetInfo, split: str, limit):
    return _official_json(_hub_file(info, split, f"{split}.json"), limit)


DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (
    DatasetInfo("pickapic-v1", "yuvalkirstain/pickapic_v1", "test_unique", ("test", "test_unique", "validation",
                "validation_unique"), "pickapic", "a parquet of the hub split (caption, jpg_0, jpg_1, label_0)",
                "Kirstain et al. 2023, arXiv:2305.01569", lambda ds, limit: _pickapic(ds, limit),
                notes="PickScore's published 70.2 is on v1 test_unique with the threshold tuned on "
                      "validation_unique"),
    DatasetInfo("pickapic-v2", "yuvalkirstain/pickapic_v2", "test_unique", ("test", "test_unique", "validation",
                "validation_unique"), "pickapic", "a parquet of the hub split (caption, jpg_0, jpg_1, label_0)",
                "Kirstain et al. 2023, arXiv:2305.01569", lambda ds, limit: _pickapic(ds, limit)),
    DatasetInfo("hpdv2", "ymhao/HPDv2", "test", ("test",), "hpdv2",
                "the official test.json (prompt, image_path, rank) with its images beside it",
                "Wu et al. 2023, arXiv:2306.09341", _hpd_hub,
                notes="images: extract test.tar.gz from the same repository next to test.json"),
    DatasetInfo("imagerewarddb", "THUDM/ImageRewardDB", "test", ("test", "validation"), "imagereward",
                "ImageReward's data/test.json (id, prompt, generations, ranking) with data/test_images",
                "Xu et al. 2023, arXiv:2304.05977", lambda ds, limit: _imagereward(ds, limit), config="1k",
                notes="the test split is the same in every config (466 prompts)"),
    DatasetInfo("hpdv3", "MizzenAI/HPDv3", "test", ("test",), "drop-ties",
                "the official test.json (prompt, path1 = preferred, path2) with its images",
                "Ma et al. 2025, arXiv:2508.03789", _hpd_hub,
                notes="pair layout per the HPSv3 README; not verified offline"),
    DatasetInfo("mmrb2-t2i", "rl-research/multimodal-rewardbench-2", "test", ("test",), "mmrb2",
                "a parquet of the hub split (pair_id, prompt_text, response_a_images, response_b_images, chosen)",
                "Hu et al. 2025, arXiv:2512.16899", lambda ds, limit: _mmrb2(ds, limit), config="t2i"),
    DatasetInfo("genai-bench", "BaiqiL/GenAI-Bench", "train", ("train",), "drop-ties",
                "a parquet with prompt, one image column per model and <model>_HumanRating",
                "Li et al. 2024, arXiv:2406.13743", lambda ds, limit: _genai(ds, limit),
                notes="1-5 alignment ratings (mean of 3 raters) of 6 models' images per prompt"),
)}


def load_preference_set(name: str, split: str | None = None, *, path: str | os.PathLike | None = None,
                        limit: int | None = None) -> PreferenceSet:
    """A named dataset (`DATASETS`) from ``path`` (a local copy) or the hub, or a schema file when ``name`` is a
    path. Unknown names raise ValueError with the known ones."""
    if name not in DATASETS:
        if Path(name).exists():
            return load_preference_file(name, limit=limit)
        from rewardbench.registry import did_you_mean

        raise ValueError(f"unknown preference dataset {name!r}.{did_you_mean(name, DATASETS)} "
                         f"Known: {', '.join(DATASETS)} (or a path to a file in the schema)")
    info = DATASETS[name]
    split = split or info.default_split
    if path is not None:
        p = Path(path)
        if p.suffix.lower() == ".json" and p.is_file():
            items, kind = _official_json(p, limit)
        elif p.suffix.lower() == ".parquet" and info.loader not in (_hpd_hub,) and _is_hub_layout(p):
            import pandas as pd

            items, kind = info.loader(pd.read_parquet(p).to_dict("records"), limit)
        else:
            return load_preference_file(p, name=name, split=split, protocol=info.protocol, limit=limit)
        source = f"local copy {p}"
    else:
        if split not in info.splits:
            raise ValueError(f"dataset {name!r} has splits {', '.join(info.splits)}, not {split!r}")
        if info.loader is _hpd_hub:
            items, kind = info.loader(info, split, limit)
        else:
            items, kind = info.loader(_load_hub_dataset(info, split), limit)
        source = f"hub {info.hub_id}{f' ({info.config})' if info.config else ''}"
    return PreferenceSet(name, split, items, kind, source, info.protocol, info.notes)


def _is_hub_layout(p: Path) -> bool:
    import pyarrow.parquet as pq

    cols = set(pq.read_schema(p).names)
    return not ({"images", "image_0"} & cols)
