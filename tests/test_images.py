import io

import numpy as np
import pytest
import torch
from PIL import Image

from rewardbench import ImageError, as_pixels, load_image, to_image_batch
from rewardbench.images import pixels_to_uint8, to_pixels


def test_uint8_array_matches_pil_and_path(tmp_path, photos):
    arr = photos["astronaut"]
    Image.fromarray(arr).save(tmp_path / "a.png")
    from_array = to_pixels(arr)
    from_pil = to_pixels(Image.fromarray(arr))
    from_path = to_pixels(tmp_path / "a.png")
    assert from_array.shape == (3, 512, 512) and from_array.dtype == torch.float32
    torch.testing.assert_close(from_array, from_pil)
    torch.testing.assert_close(from_array, from_path)
    assert 0 <= float(from_array.min()) and float(from_array.max()) <= 1
    # exact scaling: pixel value v -> v / 255
    assert from_array[0, 10, 20].item() == pytest.approx(arr[10, 20, 0] / 255)


def test_grayscale_rgba_palette_and_16bit(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    g = to_pixels(gray)
    assert g.shape == (3, 8, 8) and torch.equal(g[0], g[2])
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 0  # fully transparent: alpha is dropped, as PIL convert("RGB") does
    t = to_pixels(rgba)
    assert t.shape == (3, 8, 8) and t[0].max().item() == pytest.approx(200 / 255)
    pal = Image.fromarray(gray).convert("P")
    assert to_pixels(pal).shape == (3, 8, 8)
    # 16-bit: a PNG written with mode I;16 keeps its full range (not clipped at 255)
    sixteen = (np.linspace(0, 65535, 64).reshape(8, 8)).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "g16.png")
    t16 = to_pixels(tmp_path / "g16.png")
    assert t16.max().item() == pytest.approx(1.0) and t16.min().item() == 0.0
    assert len(torch.unique(t16[0])) > 32  # many gray levels survive, not a 0/1 clip
    torch.testing.assert_close(to_pixels(sixteen), torch.from_numpy(sixteen / 65535.0).float().expand(3, -1, -1))
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))
    assert to_pixels(cmyk)[0].mean().item() > 0.9  # red


def test_tensor_layouts_and_gradients():
    x = torch.rand(2, 3, 10, 12, requires_grad=True)
    out = as_pixels(x)
    assert out.shape == (2, 3, 10, 12)
    out.sum().backward()
    assert x.grad is not None and torch.all(x.grad == 1)
    assert as_pixels(torch.rand(10, 12, 3)).shape == (1, 3, 10, 12)  # unambiguous HWC tensor
    assert as_pixels(torch.randint(0, 255, (2, 1, 6, 6), dtype=torch.uint8)).shape == (2, 3, 6, 6)
    assert as_pixels(np.random.rand(2, 6, 6, 3).astype(np.float32)).shape == (2, 3, 6, 6)


def test_mixed_sizes_give_a_list_and_to_image_batch_needs_a_size():
    px = as_pixels([np.zeros((8, 8, 3), np.uint8), np.zeros((6, 10, 3), np.uint8)])
    assert isinstance(px, list) and [tuple(t.shape) for t in px] == [(3, 8, 8), (3, 6, 10)]
    with pytest.raises(ImageError, match="sizes differ"):
        to_image_batch(px)
    assert to_image_batch(px, size=(16, 16)).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("bad, match", [
    (torch.rand(2, 3, 8, 8) * 2 - 1, r"looks like \[-1, 1\]"),
    (torch.rand(2, 3, 8, 8) * 255, r"looks like \[0, 255\]"),
    (torch.full((1, 3, 4, 4), float("nan")), "NaN"),
    (torch.zeros(2, 5, 8, 8), "not \\[B,C,H,W\\]"),
    (torch.zeros(2, 3, 0, 8), "empty"),
    (np.zeros((8, 8, 3), np.int64), "unsupported array dtype"),
    ([np.zeros((8, 8, 3), np.uint8), {"not": "an image"}], r"images\[1\]: unsupported type dict"),
    ([], "empty batch"),
    (42, "unsupported type int"),
])
def test_bad_inputs_raise_a_clear_error(bad, match):
    with pytest.raises(ImageError, match=match):
        as_pixels(bad)


def test_bad_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        load_image(tmp_path / "empty.jpg")
    (tmp_path / "text.jpg").write_text("this is not an image")
    with pytest.raises(ImageError, match="not a recognised image"):
        load_image(tmp_path / "text.jpg")
    buf = io.BytesIO()
    Image.fromarray(np.random.randint(0, 255, (64, 64, 3), np.uint8)).save(buf, format="JPEG")
    (tmp_path / "trunc.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="cannot decode"):
        load_image(tmp_path / "trunc.jpg")
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    # the error names the offending path when it comes through a batch
    with pytest.raises(ImageError, match="text.jpg"):
        as_pixels([tmp_path / "text.jpg"])


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    # a 9000 x 9000 1-bit PNG: tiny on disk, 81 M pixels when decoded (> the 67 M default limit)
    Image.new("1", (9000, 9000)).save(tmp_path / "bomb.png")
    assert (tmp_path / "bomb.png").stat().st_size < 200_000
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(tmp_path / "bomb.png")
    Image.new("RGB", (20, 20)).save(tmp_path / "small.png")
    with pytest.raises(ImageError, match="exceeds the limit of 100"):
        load_image(tmp_path / "small.png", max_pixels=100)


def test_pixels_to_uint8_rounds_like_diffusers():
    x = torch.tensor([0.0, 0.5, 1.0, 0.998]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
    u = pixels_to_uint8(x)
    assert u.shape == (1, 1, 4, 3) and u[0, 0, :, 0].tolist() == [0, 128, 255, 254]


def test_floats_made_from_uint8_give_their_bytes_back_exactly():
    """The harness's floats remember the bytes they were decoded from; every byte value comes back as
    pixels_to_uint8 would compute it (round(k / 255 * 255) == k), through row selection too, and a change of the
    floats in place makes the memory stale."""
    from rewardbench.images import pixels_from_uint8, select_rows, uint8_source, uint8_view

    u8 = torch.arange(256, dtype=torch.uint8).view(1, 16, 16, 1).expand(3, 16, 16, 3).contiguous()
    u8[1] = 255 - u8[1]
    px = pixels_from_uint8(u8)
    assert px.shape == (3, 3, 16, 16) and torch.equal(px, u8.permute(0, 3, 1, 2).float() / 255)
    computed = (px.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    back = pixels_to_uint8(px)
    assert np.array_equal(back, computed) and back.flags.writeable and not np.shares_memory(back, u8.numpy())
    view = uint8_view(px)
    assert np.array_equal(view, computed) and not view.flags.writeable and np.shares_memory(view, u8.numpy())
    rows = select_rows(px, torch.tensor([2, 0]))
    assert np.array_equal(pixels_to_uint8(rows), computed[[2, 0]]) and uint8_source(rows) is not None
    assert np.array_equal(uint8_view(u8.permute(0, 3, 1, 2)), computed)  # a uint8 batch passes through
    px.mul_(0.5)
    assert uint8_source(px) is None  # changed in place: converted again from the floats
    assert np.array_equal(pixels_to_uint8(px), (px * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    # a uint8 batch given to a reward is converted the same way, and remembered
    batch = as_pixels(u8.permute(0, 3, 1, 2))
    assert uint8_source(batch) is not None and torch.equal(batch, u8.permute(0, 3, 1, 2).float() / 255)


def test_pixels_to_uint8_is_unchanged_off_the_uint8_path():
    x = torch.randn(2, 3, 7, 9) * 0.7 + 0.5  # values outside [0, 1] too
    expected = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(pixels_to_uint8(x), expected)
