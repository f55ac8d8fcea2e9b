"""Input sources for the scoring harness: a folder of images (plus an optional prompts file), a
manifest (JSONL, CSV or parquet with ``image``/``prompt`` columns, an optional ``group`` and any
other columns), or an in-memory list of dicts. Every source streams: rows are read in chunks, so a
manifest of any length is never held in memory at once.

A row is a dict ``{"index": i, "image": path|PIL|array|tensor, "label": str, "prompt": str,
"group": key|None, "extra": {column: value}}``; ``index`` is the row's position in the input, which
the harness uses to write results in input order and to resume; ``label`` is the image as the user
wrote it (a relative path stays relative), and ``extra`` holds the input's other columns, which pass
through to the results table.

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

from .images import IMAGE_EXTENSIONS, path_problem

MANIFEST_EXTENSIONS = (".jsonl", ".ndjson", ".csv", ".tsv", ".parquet", ".pq")
DEFAULT_CHUNK_ROWS = 4096
CORE_COLUMNS = ("image", "prompt", "group")  # every other input column passes through to the results


class SourceError(ValueError):
    """The input cannot be used as a whole (missing folder, bad manifest, prompt count mismatch)."""


class Source(abc.ABC):
    """A stream of rows. Subclasses implement `_raw_chunks`, yielding lists of partial rows."""

    has_groups: bool = False  # the source carries a `group` column
    has_prompts: bool = False  # the source carries prompts (a prompts file, a `prompt` column or key)
    columns: tuple[str, ...] = ("image",)  # the input's columns, in input order
    description: str = ""

    @property
    def extra_columns(self) -> list[str]:
        """The input's columns beyond image/prompt/group: passed through to the results table."""
        return [c for c in self.columns if c not in CORE_COLUMNS]

    @abc.abstractmethod
    def _raw_chunks(self, chunk_rows: int) -> Iterator[list[dict[str, Any]]]:
        """Lists of partial rows (``image``, ``prompt``, ``group``), at most ``chunk_rows`` each."""

    def iter_chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[list[dict[str, Any]]]:
        """Chunks of complete rows, with ``index`` counting from 0 in input order."""
        i = 0
        for chunk in self._raw_chunks(chunk_rows):
            rows = []
            for r in chunk:
                image = r["image"]
                rows.append({"index": i, "image": image, "label": r.get("label", image),
                             "prompt": _prompt(r.get("prompt")), "group": _group(r.get("group")),
                             "extra": {k: cell_value(v) for k, v in r.get("extra", {}).items()}})
                i += 1
            if rows:
                yield rows

    def iter_rows(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[dict[str, Any]]:
        for chunk in self.iter_chunks(chunk_rows):
            yield from chunk

    def __len__(self) -> int:  # a streaming count: one cheap pass
        return sum(len(c) for c in self._raw_chunks(DEFAULT_CHUNK_ROWS))

    def identity(self, content_hash: bool = False) -> dict[str, Any]:
        """What identifies this input for resuming: a digest of everything that changes a score. Image files are
        identified by size and modification time (one ``stat`` each), or with ``content_hash`` by the SHA-256 of
        their bytes (a file restored with its old time, a copy that keeps times: read in full)."""
        return {"source": self.description}


def cell_value(v: Any) -> Any:
    """A pass-through value as a table cell: None, bool, int, float and str as they are (NaN and
    numpy scalars normalised), anything else (lists, dicts, dates) as JSON text.

    Example:
        >>> [cell_value(x) for x in (float("nan"), 3, "a", [1, 2])]
        [None, 3, 'a', '[1, 2]']
    """
    if hasattr(v, "item") and not isinstance(v, (str, bytes)) and getattr(v, "ndim", 0) == 0:
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return None if v != v else v
    if hasattr(v, "tolist"):
        v = v.tolist()
    return json.dumps(v, default=str, ensure_ascii=False)


def _digest(*parts: Any) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _file_stamp(path: str | os.PathLike, content_hash: bool = False) -> tuple:
    """(size, modification time) of a file, or None: a rewritten image is noticed without reading it; with
    ``content_hash``, ("sha256", the digest of its bytes) instead."""
    try:
        if content_hash:
            import hashlib

            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            return "sha256", h.hexdigest()
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except OSError:
        return (None,)


def _item_digest(image: Any, content_hash: bool = False) -> bytes:
    """The content of an in-memory image (array, tensor, PIL) as bytes, or a path with its file stamp."""
    if isinstance(image, (str, os.PathLike)):
        return repr((str(image), _file_stamp(image, content_hash))).encode()
    if hasattr(image, "detach"):  # torch tensor
        image = image.detach().cpu().numpy()
    if hasattr(image, "tobytes") and hasattr(image, "mode") and hasattr(image, "size"):  # PIL image
        return repr((image.mode, image.size)).encode() + image.tobytes()
    if hasattr(image, "tobytes") and hasattr(image, "dtype"):
        import numpy as np

        a = np.ascontiguousarray(image)
        return repr((a.dtype.str, a.shape)).encode() + a.tobytes()
    return repr(image).encode()


def is_blank(value: Any) -> bool:
    """The one rule for an empty value: None, NaN or text of only whitespace. An empty prompt is refused
    by a reward that needs one (`rewardbench.RewardModel.refuses_prompt`: the row's error); a row with an
    empty value in a ``group_by`` column has no group (`rewardbench.groups.group_key`); an input whose
    prompts are all empty has none.

    Example:
        >>> [is_blank(v) for v in (None, float("nan"), "  ", "a cat", 0)]
        [True, True, True, False, False]
    """
    return value is None or (isinstance(value, float) and value != value) or (isinstance(value, str)
                                                                                and not value.strip())


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


def _is_image_name(p: Path) -> bool:
    """Named like an image (and not hidden), whatever it is: a dangling link or a folder named ``x.jpg`` is listed
    and becomes a row with its error (`path_problem`), never left out silently."""
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


class FolderSource(Source):
    """Image files of a folder (sorted by name, not recursive) with optional prompts: a text file
    with one prompt per line, in the same sorted order, or one prompt string for every image."""

    def __init__(self, folder: str | os.PathLike, prompts: str | os.PathLike | Sequence[str] | None = None):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder}: not a folder")
        # file names only: cheap even for 100k files (one str per file)
        self.files = sorted(p.name for p in self.folder.iterdir() if _is_image_name(p))
        if not self.files:
            raise SourceError(f"{self.folder}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
        self.prompts = _read_prompts(prompts, len(self.files), str(self.folder)) if prompts is not None else None
        self.has_prompts = self.prompts is not None
        self.columns = ("image", "prompt") if self.has_prompts else ("image",)
        self.description = f"folder:{self.folder.resolve()}"

    def _raw_chunks(self, chunk_rows):
        for s in range(0, len(self.files), chunk_rows):
            names = self.files[s:s + chunk_rows]
            yield [{"image": str(self.folder / n), "prompt": self.prompts[s + j] if self.prompts else ""}
                   for j, n in enumerate(names)]

    def __len__(self):
        return len(self.files)

    def identity(self, content_hash: bool = False):
        # names with sizes and mtimes (or contents)
        files = _digest(*[(n, _file_stamp(self.folder / n, content_hash)) for n in self.files])
        return {"source": self.description, "rows": len(self.files),
                "files": f"sha256:{files}" if content_hash else files, "prompts": _digest(*(self.prompts or []))}


def _read_prompts(prompts: str | os.PathLike | Sequence[str], n: int, what: str) -> list[str]:
    if isinstance(prompts, (str, os.PathLike)) and Path(prompts).is_file():
        lines = Path(prompts).read_text(encoding="utf-8").splitlines()
        while lines and is_blank(lines[-1]):  # a trailing blank line is not a prompt
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
    or absolute), an optional ``prompt`` and an optional ``group`` column; every other column passes
    through to the results. Read in chunks.

    CSV values pass through as pandas' ``read_csv`` would type the whole column (a column of numbers
    stays numeric), while ``prompt`` and ``group`` stay strings ("1" is a prompt, not a number).
    """

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
        self.columns = tuple(str(c) for c in cols)
        self.has_groups = "group" in cols
        self.has_prompts = "prompt" in cols
        self.description = f"manifest:{self.path.resolve()}"
        self._csv_numeric: dict[str, bool] | None = None

    def _columns(self) -> list[str]:
        if self.kind in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(self.path).schema_arrow.names)
        if self.kind in (".csv", ".tsv"):
            import pandas as pd

            return list(pd.read_csv(self.path, nrows=0, sep=self._sep).columns)
        keys: dict[str, None] = {}  # JSONL: the union of the keys of every line, in first-seen order
        with open(self.path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    keys.update(dict.fromkeys(self._json_row(line, n)))
        if not keys:
            raise SourceError(f"{self.path}: empty manifest")
        return list(keys)

    @property
    def _sep(self) -> str:
        return "\t" if self.kind == ".tsv" else ","

    def _json_row(self, line: str, n: int) -> dict[str, Any]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SourceError(f"{self.path}:{n}: not valid JSON ({e})") from None
        if not isinstance(row, dict):
            raise SourceError(f"{self.path}:{n}: each line must be a JSON object with an 'image' key")
        return row

    def _resolve(self, image: Any) -> tuple[str, str]:
        """(path to read, the path as the manifest wrote it)."""
        if image is None or (isinstance(image, float) and image != image):
            return "", ""  # becomes a per-row error ("no image path")
        p = Path(str(image)).expanduser()
        return str(p if p.is_absolute() else self.root / p), str(image)

    def _row(self, r: dict[str, Any]) -> dict[str, Any]:
        path, label = self._resolve(r.get("image"))
        extra = {c: r.get(c) for c in self.columns if c not in CORE_COLUMNS}
        return {"image": path, "label": label, "prompt": r.get("prompt"), "group": r.get("group"), "extra": extra}

    def _numeric_csv_columns(self) -> dict[str, bool]:
        """Which pass-through CSV columns read as numbers as a whole (one streaming pass, done once)."""
        if self._csv_numeric is None:
            import pandas as pd

            extra = [c for c in self.columns if c not in CORE_COLUMNS]
            numeric = dict.fromkeys(extra, True)
            if extra:
                for df in pd.read_csv(self.path, sep=self._sep, usecols=extra, chunksize=DEFAULT_CHUNK_ROWS,
                                      dtype=str, keep_default_na=False):
                    for c in extra:
                        if numeric[c]:
                            vals = df[c][df[c] != ""]
                            numeric[c] = bool(pd.to_numeric(vals, errors="coerce").notna().all())
            self._csv_numeric = numeric
        return self._csv_numeric

    def _raw_chunks(self, chunk_rows):
        if self.kind in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(self.path)
            for batch in pf.iter_batches(batch_size=chunk_rows):
                d = batch.to_pydict()
                yield [self._row({k: d[k][i] for k in d}) for i in range(batch.num_rows)]
        elif self.kind in (".csv", ".tsv"):
            import pandas as pd

            numeric = self._numeric_csv_columns()
            # read as text ("1" is a prompt, not a number; empty cells stay ""), then type the
            # pass-through columns as a whole-file read would
            for df in pd.read_csv(self.path, sep=self._sep, chunksize=chunk_rows, dtype=str, keep_default_na=False):
                for c, is_num in numeric.items():
                    df[c] = pd.to_numeric(df[c].replace("", None), errors="coerce") if is_num else \
                        df[c].where(df[c] != "", None)
                recs = df.to_dict("records")
                for r in recs:
                    if r.get("group") == "":
                        r["group"] = None
                yield [self._row(r) for r in recs]
        else:
            with open(self.path, encoding="utf-8") as f:
                chunk = []
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    chunk.append(self._row(self._json_row(line, n)))
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

    def identity(self, content_hash: bool = False):
        """The manifest's bytes (any edited row is noticed) and every image file it names: size and modification
        time, one ``stat`` per row (or, with ``content_hash``, the SHA-256 of the file), so an image rewritten
        between runs is noticed too."""
        import hashlib

        h = hashlib.sha256()
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        images = hashlib.sha256()
        for chunk in self._raw_chunks(DEFAULT_CHUNK_ROWS):
            for r in chunk:
                if r["image"]:
                    images.update(repr((r["label"], _file_stamp(r["image"], content_hash))).encode() + b"\0")
        return {"source": self.description, "bytes": self.path.stat().st_size, "sha256": h.hexdigest()[:16],
                "images": f"{'sha256' if content_hash else 'size+mtime'}:{images.hexdigest()[:16]}"}


class ListSource(Source):
    """In-memory rows: dicts with ``image`` (path, PIL, array or tensor), optional ``prompt``/``group``
    and any other keys (passed through to the results)."""

    def __init__(self, items: Sequence[Mapping[str, Any]], prompts: Sequence[str] | str | None = None):
        self.items = list(items)
        for i, it in enumerate(self.items):
            if not isinstance(it, Mapping) or "image" not in it:
                raise SourceError(f"items[{i}]: expected a dict with an 'image' key, got {type(it).__name__}")
        if prompts is not None:
            ps = _read_prompts(prompts, len(self.items), "the list")
            self.items = [{**it, "prompt": p} for it, p in zip(self.items, ps)]
        self.columns = tuple(dict.fromkeys(str(k) for it in self.items for k in it))
        self.has_groups = any(it.get("group") is not None for it in self.items)
        self.has_prompts = not all(is_blank(it.get("prompt")) for it in self.items)
        self.description = f"list of {len(self.items)} items"
        self.in_memory = not all(isinstance(it["image"], (str, os.PathLike)) for it in self.items)

    def _raw_chunks(self, chunk_rows):
        for s in range(0, len(self.items), chunk_rows):
            rows = []
            for it in self.items[s:s + chunk_rows]:
                image = str(it["image"]) if isinstance(it["image"], os.PathLike) else it["image"]
                rows.append({"image": image, "prompt": it.get("prompt"), "group": it.get("group"),
                             "extra": {k: v for k, v in it.items() if k not in CORE_COLUMNS}})
            yield rows

    def __len__(self):
        return len(self.items)

    def identity(self, content_hash: bool = False):
        """A digest of the content: image bytes (arrays, tensors, PIL) or paths with their file stamps (or
        contents), prompts, groups and the other keys; two lists of the same length are told apart."""
        parts = [(_item_digest(it["image"], content_hash),
                  repr(sorted((str(k), repr(v)) for k, v in it.items() if k != "image"))) for it in self.items]
        return {"source": self.description, "content": _digest(*[p for pair in parts for p in pair])}


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
        problem = path_problem(p)
        raise SourceError(f"{p}: {'no such file or folder' if problem == 'no such file' else problem}")
    if isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        return ListSource(source, prompts)
    raise SourceError(f"cannot read images from a {type(source).__name__}: pass a folder, a manifest "
                      "(.jsonl/.csv/.parquet) or a list of {'image': ..., 'prompt': ...} dicts")
