"""The pretraining loss's data: endless random image-caption pairs (a ``datasets`` id or a local folder),
resized and centre-cropped to the training resolution.

    >>> import torch, tempfile, pathlib
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (40, 30), "red").save(d / "a.png"); _ = (d / "a.txt").write_text("a red square")
    >>> pixels, captions = CaptionData(str(d), resolution=16).batch(2, torch.Generator().manual_seed(0))
    >>> pixels.shape, captions
    (torch.Size([2, 3, 16, 16]), ['a red square', 'a red square'])
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


class CaptionData:
    """Endless random image-caption pairs from a ``datasets`` id or a local folder (images with
    same-name ``.txt`` captions, or a ``metadata.jsonl`` with ``file_name`` and the caption column)."""

    def __init__(self, source: str, split: str = "train", image_column: str = "image", caption_column: str = "text",
                 resolution: int = 512):
        self.resolution = resolution
        p = Path(source).expanduser()
        if p.is_dir():
            meta = p / "metadata.jsonl"
            if meta.is_file():
                rows = [json.loads(line) for line in meta.read_text().splitlines() if line.strip()]
                self.items = [(p / r["file_name"], r[caption_column]) for r in rows]
            else:
                from rewardbench.images import IMAGE_EXTENSIONS

                self.items = [(f, f.with_suffix(".txt").read_text().strip()) for f in sorted(p.iterdir())
                              if f.suffix.lower() in IMAGE_EXTENSIONS and f.with_suffix(".txt").is_file()]
            if not self.items:
                raise ValueError(f"{p}: no image-caption pairs (images with same-name .txt files, or metadata.jsonl)")
            self.ds = None
        else:
            import datasets

            self.ds = datasets.load_dataset(source, split=split)
            self.image_column, self.caption_column = image_column, caption_column
            self.items = None

    def __len__(self) -> int:
        return len(self.items) if self.items is not None else len(self.ds)

    def batch(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, list[str]]:
        """``n`` pairs: images ``(n, 3, R, R)`` in [-1, 1] (resized, centre-cropped) and captions."""
        from rewardbench.images import load_image

        idx = torch.randint(len(self), (n,), generator=generator).tolist()
        imgs, caps = [], []
        for i in idx:
            if self.items is not None:
                path, cap = self.items[i]
                img = load_image(path)
            else:
                row = self.ds[i]
                img, cap = row[self.image_column].convert("RGB"), str(row[self.caption_column])
            imgs.append(self._prep(img))
            caps.append(cap)
        return torch.stack(imgs), caps

    def _prep(self, img) -> torch.Tensor:
        from PIL import Image

        r = self.resolution
        w, h = img.size
        s = r / min(w, h)
        img = img.resize((max(r, round(w * s)), max(r, round(h * s))), Image.BICUBIC)
        w, h = img.size
        left, top = (w - r) // 2, (h - r) // 2
        img = img.crop((left, top, left + r, top + r))
        t = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return t * 2 - 1
