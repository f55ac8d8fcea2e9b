"""Shared fixtures: real photos shipped with scikit-image/matplotlib, and ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from rewardbench.samples import sample_photo

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REWARDBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


real_photo = sample_photo  # the kernel's bundled real photos (rewardbench.samples)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    return {n: real_photo(n) for n in ("astronaut", "coffee", "chelsea", "rocket", "grace_hopper")}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (only present beside the project checkout)")
    return SHARED_DATA


@pytest.fixture
def photo_dir(tmp_path, photos) -> Path:
    """A folder of real JPEG/PNG photos with a prompts file."""
    from PIL import Image

    d = tmp_path / "photos"
    d.mkdir()
    prompts = {"astronaut": "a photo of an astronaut", "coffee": "a cup of coffee",
               "chelsea": "a photo of a cat", "rocket": "a rocket on a launch pad",
               "grace_hopper": "a portrait of a woman in uniform"}
    for name, arr in photos.items():
        ext = "png" if name == "rocket" else "jpg"
        Image.fromarray(arr).save(d / f"{name}.{ext}")
    (d / "prompts.txt").write_text("".join(f"{prompts[n]}\n" for n in sorted(photos)))
    return d


def assert_gradient_step_raises(reward, pixels, prompts, lr: float = 0.01) -> None:
    """One normalised gradient-ascent step on the pixels (ReFL/DRaFT-style) raises every image's score."""
    import torch

    x = pixels.detach().clone().requires_grad_(True)
    before = reward(x, prompts).scores
    before.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    step = x.detach() + lr * x.grad / x.grad.abs().amax(dim=(1, 2, 3), keepdim=True)
    with torch.no_grad():
        after = reward(step.clamp(0, 1), prompts).scores
    assert (after > before.detach()).all(), (before, after)


@pytest.fixture
def unreachable(monkeypatch, tmp_path):
    """No network, whatever this machine has: the reachability probe answers no for every host, the hub
    and weight caches are empty, and any download attempt is recorded (and fails). Yields the list of
    attempted downloads, which an offline-failure test asserts to be empty."""
    import huggingface_hub
    import torch

    from rewardbench import weights

    attempts: list = []
    monkeypatch.setattr(weights, "_reachable", lambda host, port=443: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the probe decides, as on a machine without network
    monkeypatch.delenv("REWARDBENCH_WEIGHTS", raising=False)
    for var, sub in (("HF_HOME", "hf"), ("HF_HUB_CACHE", "hf/hub"), ("REWARDBENCH_CACHE", "rb"), ("TORCH_HOME", "t")):
        monkeypatch.setenv(var, str(tmp_path / "empty-caches" / sub))

    def refuse(what):
        def call(*a, **k):
            if k.get("local_files_only"):  # a cache lookup is not a download
                return real[what](*a, **k)
            attempts.append((what, a, k))
            raise OSError(f"{what}: no network in this test")
        return call

    real = {"hf_hub_download": huggingface_hub.hf_hub_download, "snapshot_download": huggingface_hub.snapshot_download}
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse("download_url_to_file"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse("hf_hub_download"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse("snapshot_download"))
    yield attempts
