"""Real photos that ship inside installed packages (scikit-image, matplotlib): test and demo images
that need no download.

    >>> from rewardbench.samples import sample_photo
    >>> sample_photo("astronaut").shape
    (512, 512, 3)
"""

from __future__ import annotations

import numpy as np


def sample_photo(name: str) -> np.ndarray:
    """A real RGB uint8 photo ``[H, W, 3]``: a ``skimage.data`` name ('astronaut', 'coffee', 'chelsea',
    'rocket', 'camera', ...; grayscale is repeated to 3 channels, alpha dropped) or 'grace_hopper'
    (matplotlib's sample data)."""
    if name == "grace_hopper":
        import matplotlib.cbook as cbook
        from PIL import Image

        with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
            return np.array(im.convert("RGB"))
    import skimage.data

    arr = getattr(skimage.data, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])
