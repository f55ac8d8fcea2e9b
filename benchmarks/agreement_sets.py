"""Built-in preference sets that need no download: real photos against degraded copies of themselves.

``photo-distortions``: every bundled real photo (`rewardbench.samples`) paired with four degraded copies
of itself (heavy JPEG artefacts, Gaussian blur, Gaussian noise, pixelation); the undegraded photo is the
preferred image of every pair. The label is known by construction, not collected from people: it stands
for the uncontroversial judgement that an image is better than a visibly damaged copy, which is what the
offline rewards can be measured on without any download. Pairs of one photo share a cluster (prompt).

    >>> s = photo_distortion_set(photos=("astronaut",), size=64)
    >>> len(s), sorted({it.category for it in s.items}), s.items[0].human.tolist()
    (4, ['blur', 'jpeg-q5', 'noise', 'pixelate'], [1.0, 0.0])
"""

from __future__ import annotations

import io

import numpy as np

from .agreement_data import Item, PreferenceSet

# real photos bundled with scikit-image and matplotlib, with a caption each (for prompted rewards)
PHOTOS = {
    "astronaut": "a portrait photo of an astronaut in a spacesuit with a flag",
    "chelsea": "a photo of a tabby cat",
    "coffee": "a photo of a cup of coffee on a saucer",
    "rocket": "a photo of a rocket on a launch pad",
    "camera": "a black and white photo of a man with a camera on a tripod",
    "grace_hopper": "a portrait photo of a woman in a navy uniform",
    "coins": "a grayscale photo of old coins",
    "hubble_deep_field": "a telescope photo of distant galaxies",
    "immunohistochemistry": "a microscope photo of stained tissue",
    "retina": "a photo of a human retina",
    "moon": "a grayscale photo of the surface of the moon",
    "brick": "a photo of a brick wall",
    "grass": "a photo of grass",
    "gravel": "a photo of gravel",
    "page": "a scanned page of printed text",
}
DISTORTIONS = ("jpeg-q5", "blur", "noise", "pixelate")


def _distort(img, kind: str, rng: np.random.Generator):
    from PIL import Image, ImageFilter

    w, h = img.size
    if kind == "jpeg-q5":
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=5)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if kind == "blur":
        return img.filter(ImageFilter.GaussianBlur(radius=max(w, h) / 128))
    if kind == "noise":
        arr = np.asarray(img, np.float32) + rng.normal(0.0, 25.0, (h, w, 3))
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if kind == "pixelate":
        return img.resize((max(1, w // 16), max(1, h // 16)), Image.BILINEAR).resize((w, h), Image.NEAREST)
    raise ValueError(f"unknown distortion {kind!r}; known: {DISTORTIONS}")


def photo_distortion_set(photos=tuple(PHOTOS), distortions=DISTORTIONS, size: int = 256, seed: int = 0
                         ) -> PreferenceSet:
    """The ``photo-distortions`` set: ``len(photos) * len(distortions)`` pairs (original, degraded), images
    resized so their longer side is ``size`` pixels (PIL images in memory)."""
    from PIL import Image

    from rewardbench.samples import sample_photo

    rng = np.random.default_rng(seed)
    items = []
    for name in photos:
        img = Image.fromarray(sample_photo(name))
        scale = size / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
        for kind in distortions:
            items.append(Item(f"{name}/{kind}", PHOTOS.get(name, f"a photo ({name})"),
                              [img, _distort(img, kind, rng)], np.array([1.0, 0.0]), kind))
    return PreferenceSet("photo-distortions", "all", items, "choice",
                         f"built in: {len(photos)} bundled photos (scikit-image, matplotlib) x {len(distortions)} "
                         f"distortions, {size} px", "drop-ties",
                         "label by construction: the undegraded photo is preferred", {"judge": "construction"})


BUILTIN_SETS = {"photo-distortions": photo_distortion_set}
