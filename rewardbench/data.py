"""Input sources for the scoring harness: a folder of images (plus an optional prompts file), a
manifest (JSONL, CSV or parquet with ``image``/``prompt`` columns and an optional ``group``), or an
in-memory list of dicts. Every source streams: rows are read in chunks, so a manifest of any
length is never held in memory at once.

A row is a dict ``{"index": i, "image": path|PIL|array|tensor, "prompt": str, "group": key|None}``;
``index`` is the row's position in the input, which the harness uses to write results in input
order and to resume.

Example:
    >>> import json, pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "m.jsonl").write_text(json.dumps({"image": "a.png", "prompt": "a cat"}) + "\\n")
    >>> src = open_source(d / "m.jsonl")
    >>> len(src), next(src.iter_rows())["image"].endswith("a.png")
    (1, True)
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .images import IMAGE_EXTENSIONS

MANIFEST_EXTENSIONS = (".jsonl", ".ndjson", ".csv", ".tsv", ".parquet", ".pq")
DEFAULT_CHUNK_ROWS = 4096


class SourceError(ValueError):
    """The input cannot be used as a whole (missing folder, bad manifest, prompt count mismatch)."""


class Source(abc.ABC):
    """A stream of rows. Subclasses implement `_raw_chunks`, yielding lists of partial rows."""

    has_groups: bool = False  # the source carries a `group` column
    description: str = ""

    @abc.abstractmethod
    def _raw_chunks(self, chunk_rows: int) -> Iterator[list[dict[str, Any]]]:
        """Lists of partial rows (``image``, ``prompt``, ``group``), at most ``chunk_rows`` each."""

    def iter_chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[list[dict[str, Any]]]:
        """Chunks of complete rows, with ``index`` counting from 0 in input order."""
        i = 0
        for chunk in self._raw_chunks(chunk_rows):
            rows = []
            for r in chunk:
                rows.append({"index": i, "image": r["image"], "prompt": _prompt(r.get("prompt")),
                             "group": _group(r.get("group"))})
                i += 1
            if rows:
                yield rows

    def iter_rows(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[dict[str, Any]]:
        for chunk in self.iter_chunks(chunk_rows):
            yield from chunk

    def __len__(self) -> int:  # a streaming count: one cheap pass
        return sum(len(c) for c in self._raw_chunks(DEFAULT_CHUNK_ROWS))

    def identity(self) -> dict[str, Any]:
        """What identifies this input for resuming (paths and sizes, not contents)."""
        return {"source": self.description}


def _prompt(p: Any) -> str:
    if p is None:
        return ""
    if isinstance(p, float) and p != p:  # NaN from pandas
        return ""
    return str(p)


def _group(g: Any) -> Any:
    if g is None or (isinstance(g, float) and g != g):
        return None
    if hasattr(g, "item") and not isinstance(g, (str, bytes)):  # numpy scalars -> python
        try:
            return g.item()
        except (ValueError, AttributeError):
            pass
    return g


def _is_image_file(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


class FolderSource(Source):
    """Image files of a folder (sorted by name, not recursive) with optional prompts: a text file
    with one prompt per line, in the same sorted order, or one prompt string for every image."""

    def __init__(self, folder: str | os.PathLike, prompts: str | os.PathLike | Sequence[str] | None = None):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder}: not a folder")
        # file names only: cheap even for 100k files (one str per file)
        self.files = sorted(p.name for p in self.folder.iterdir() if _is_image_file(p))
        if not self.files:
            raise SourceError(f"{self.folder}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
        self.prompts = _read_prompts(prompts, len(self.files), str(self.folder)) if prompts is not None else None
        self.description = f"folder:{self.folder.resolve()}"

    def _raw_chunks(self, chunk_rows):
        for s in range(0, len(self.files), chunk_rows):
            names = self.files[s:s + chunk_rows]
            yield [{"image": str(self.folder / n), "prompt": self.prompts[s + j] if self.prompts else ""}
                   for j, n in enumerate(names)]

    def __len__(self):
        return len(self.files)

    def identity(self):
        import hashlib

        names = hashlib.sha256("\n".join(self.files).encode()).hexdigest()[:16]
        prompts = hashlib.sha256("\n".join(self.prompts or []).encode()).hexdigest()[:16]
        return {"source": self.description, "rows": len(self.files), "names": names, "prompts": prompts}


def _read_prompts(prompts: str | os.PathLike | Sequence[str], n: int, what: str) -> list[str]:
    if isinstance(prompts, (str, os.PathLike)) and Path(prompts).is_file():
        lines = Path(prompts).read_text(encoding="utf-8").splitlines()
        while lines and not lines[-1].strip():  # a trailing blank line is not a prompt
            lines.pop()
        if len(lines) == 1 and n > 1:
            lines = lines * n
        if len(lines) != n:
            raise SourceError(f"{prompts}: {len(lines)} prompts for {n} images in {what} "
                              "(one prompt per line, in the images' sorted file-name order, or a single line for all)")
        return lines
    if isinstance(prompts, str):
        if os.sep in prompts or prompts.endswith(".txt"):
            raise SourceError(f"prompts file {prompts} does not exist")
        return [prompts] * n
    out = [str(p) for p in prompts]
    if len(out) != n:
        raise SourceError(f"{len(out)} prompts for {n} images in {what}")
    return out


class ManifestSource(Source):
    """JSONL / CSV / TSV / parquet with an ``image`` column (paths relative to the manifest's folder,
    or absolute), an optional ``prompt`` and an optional ``group`` column. Read in chunks."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such manifest")
        self.root = self.path.resolve().parent
        self.kind = self.path.suffix.lower()
        if self.kind not in MANIFEST_EXTENSIONS:
            raise SourceError(f"{self.path}: unknown manifest type (use {', '.join(MANIFEST_EXTENSIONS)})")
        cols = self._columns()
        if "image" not in cols:
            alt = [c for c in cols if c.lower() in ("path", "file", "filename", "image_path", "img")]
            hint = f" (found {alt[0]!r}: rename it to 'image')" if alt else ""
            raise SourceError(f"{self.path}: manifest needs an 'image' column; columns are {sorted(cols)}{hint}")
        self.has_groups = "group" in cols
        self.description = f"manifest:{self.path.resolve()}"

    def _columns(self) -> set[str]:
        if self.kind in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return set(pq.ParquetFile(self.path).schema_arrow.names)
        if self.kind in (".csv", ".tsv"):
            import pandas as pd

            return set(pd.read_csv(self.path, nrows=0, sep="\t" if self.kind == ".tsv" else ",").columns)
        with open(self.path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    return set(self._json_row(line, n))
        raise SourceError(f"{self.path}: empty manifest")

    def _json_row(self, line: str, n: int) -> dict[str, Any]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SourceError(f"{self.path}:{n}: not valid JSON ({e})") from None
        if not isinstance(row, dict):
            raise SourceError(f"{self.path}:{n}: each line must be a JSON object with an 'image' key")
        return row

    def _resolve(self, image: Any) -> Any:
        if image is None or (isinstance(image, float) and image != image):
            return ""  # becomes a per-row error ("no such file")
        p = Path(str(image)).expanduser()
        return str(p if p.is_absolute() else self.root / p)

    def _raw_chunks(self, chunk_rows):
        cols = ["image", "prompt", "group"]
        if self.kind in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(self.path)
            use = [c for c in cols if c in pf.schema_arrow.names]
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=use):
                d = batch.to_pydict()
                yield [{k: d[k][i] for k in use} | {"image": self._resolve(d["image"][i])}
                       for i in range(batch.num_rows)]
        elif self.kind in (".csv", ".tsv"):
            import pandas as pd

            sep = "\t" if self.kind == ".tsv" else ","
            header = pd.read_csv(self.path, nrows=0, sep=sep).columns
            use = [c for c in cols if c in header]
            # prompts and groups stay strings ("1" is a prompt, not a number); empty cells stay ""
            for df in pd.read_csv(self.path, sep=sep, usecols=use, chunksize=chunk_rows, dtype=str,
                                  keep_default_na=False):
                recs = df.to_dict("records")
                for r in recs:
                    r["image"] = self._resolve(r["image"])
                    if r.get("group") == "":
                        r["group"] = None
                yield recs
        else:
            with open(self.path, encoding="utf-8") as f:
                chunk = []
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    row = self._json_row(line, n)
                    chunk.append({"image": self._resolve(row.get("image")), "prompt": row.get("prompt"),
                                  "group": row.get("group")})
                    if len(chunk) >= chunk_rows:
                        yield chunk
                        chunk = []
                if chunk:
                    yield chunk

    def __len__(self):
        if self.kind in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.path).metadata.num_rows
        if self.kind in (".csv", ".tsv"):
            return super().__len__()
        with open(self.path, "rb") as f:
            return sum(1 for line in f if line.strip())

    def identity(self):
        import hashlib

        h = hashlib.sha256()
        with open(self.path, "rb") as f:  # size + the first MiB: a rewritten manifest is noticed
            h.update(f.read(1 << 20))
        return {"source": self.description, "bytes": self.path.stat().st_size, "head_sha256": h.hexdigest()[:16]}


class ListSource(Source):
    """In-memory rows: dicts with ``image`` (path, PIL, array or tensor), optional ``prompt``/``group``."""

    def __init__(self, items: Sequence[Mapping[str, Any]], prompts: Sequence[str] | str | None = None):
        self.items = list(items)
        for i, it in enumerate(self.items):
            if not isinstance(it, Mapping) or "image" not in it:
                raise SourceError(f"items[{i}]: expected a dict with an 'image' key, got {type(it).__name__}")
        if prompts is not None:
            ps = _read_prompts(prompts, len(self.items), "the list")
            self.items = [{**it, "prompt": p} for it, p in zip(self.items, ps)]
        self.has_groups = any(it.get("group") is not None for it in self.items)
        self.description = f"list of {len(self.items)} items"
        self.in_memory = not all(isinstance(it["image"], (str, os.PathLike)) for it in self.items)

    def _raw_chunks(self, chunk_rows):
        for s in range(0, len(self.items), chunk_rows):
            yield [{"image": str(it["image"]) if isinstance(it["image"], os.PathLike) else it["image"],
                    "prompt": it.get("prompt"), "group": it.get("group")} for it in self.items[s:s + chunk_rows]]

    def __len__(self):
        return len(self.items)

    def identity(self):
        if self.in_memory:
            return {"source": self.description}
        return {"source": self.description, "images": [str(it["image"]) for it in self.items[:3]]}


def open_source(source: Any, prompts: str | os.PathLike | Sequence[str] | None = None) -> Source:
    """A folder, a manifest path or a list of dicts → a `Source`. Raises `SourceError` when the
    input cannot be used at all (bad rows become per-row errors later, not here)."""
    if isinstance(source, Source):
        return source
    if isinstance(source, (str, os.PathLike)):
        p = Path(source).expanduser()
        if p.is_dir():
            return FolderSource(p, prompts)
        if p.is_file():
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                return ListSource([{"image": str(p)}], prompts)
            if prompts is not None:
                raise SourceError(f"{p}: a manifest carries its own 'prompt' column; --prompts is for folders")
            return ManifestSource(p)
        raise SourceError(f"{p}: no such file or folder")
    if isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        return ListSource(source, prompts)
    raise SourceError(f"cannot read images from a {type(source).__name__}: pass a folder, a manifest "
                      "(.jsonl/.csv/.parquet) or a list of {'image': ..., 'prompt': ...} dicts")
