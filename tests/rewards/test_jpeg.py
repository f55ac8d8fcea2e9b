import io

import numpy as np
import torch
from PIL import Image

import rewardbench


def _size_kb(arr: np.ndarray) -> float:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95)
    return len(buf.getvalue()) / 1000


def test_jpeg_rewards_match_an_independent_encoding(photos):
    arrs = [photos["astronaut"][:256, :256], photos["coffee"][:256, :256]]
    x = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrs])  # uint8 batch
    inc = rewardbench.load_reward("jpeg-incompressibility")(x).scores
    comp = rewardbench.load_reward("jpeg-compressibility")(x).scores
    expected = torch.tensor([_size_kb(a) for a in arrs])
    torch.testing.assert_close(inc, expected)
    torch.testing.assert_close(comp, -expected)


def test_flat_images_are_more_compressible_than_photos(photos):
    flat = np.full((256, 256, 3), 128, np.uint8)
    r = rewardbench.load_reward("jpeg-compressibility")
    s = r([flat, photos["astronaut"][:256, :256]]).scores
    assert s[0] > s[1]
    assert rewardbench.get_spec("jpeg-compressibility").offline
    assert r.weights_used.startswith("none")
