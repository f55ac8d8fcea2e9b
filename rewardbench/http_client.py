"""A small client of the reward service's HTTP endpoint (standard library only, no Ray): `HttpClient`, the image
encoding of its JSON schema (`encode_image`, `decode_image`; the schema is in `rewardbench.http_service`), and
`HttpTransport`, which lets `rewardbench.remote.RemoteReward` score over HTTP (``remote="http://HOST:PORT"``).

Example (the image encoding round trip):
    >>> import numpy as np
    >>> img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    >>> bool((decode_image(encode_image(img)) == img).all())
    True
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .images import MAX_PIXELS
from .provenance import Provenance
from .wire import RemoteRewardError, ServedInfo


class RequestError(ValueError):
    """A request the endpoint cannot serve (answered 400)."""


# -- images ---------------------------------------------------------------------------------------------------------
def encode_image(image: Any, fmt: str = "PNG") -> str:
    """One image (uint8 ``[H,W,3]`` array, PIL image, float ``[3,H,W]`` tensor in [0, 1], or a path) as base64
    PNG (or JPEG). Floats are rounded to 8 bits."""
    from PIL import Image

    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        with open(image, "rb") as f:
            return base64.b64encode(f.read()).decode()
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.dtype != torch.uint8:
            t = (t.float().clamp(0, 1) * 255).round().to(torch.uint8)
        image = t.permute(1, 2, 0).numpy()
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image.astype(np.uint8)), "RGB")
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def decode_image(data: str, where: str = "image") -> np.ndarray:
    """Base64 PNG or JPEG → uint8 ``[H,W,3]``; `RequestError` for anything else (or an oversized image)."""
    import warnings

    from PIL import Image

    try:
        raw = base64.b64decode(data, validate=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw), formats=["PNG", "JPEG"]) as img:
                if img.size[0] * img.size[1] > MAX_PIXELS:
                    raise RequestError(f"{where}: {img.size[0]}x{img.size[1]} exceeds {MAX_PIXELS} pixels")
                return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except RequestError:
        raise
    except Exception as e:
        raise RequestError(f"{where}: not a PNG or JPEG image ({type(e).__name__})") from None


# -- the client side ------------------------------------------------------------------------------------------------
class HttpClient:
    """A small client of the endpoint (standard library only): `rewards` and `score`.

    ``client.score(images, prompts, ["jpeg-compressibility"])`` returns the response's JSON (see the module
    docstring); images are paths, PIL images, uint8 ``[H,W,3]`` arrays or float ``[3,H,W]`` tensors.
    """

    def __init__(self, url: str, timeout_s: float = 300.0):
        self.url, self.timeout_s = url.rstrip("/"), timeout_s

    def _request(self, path: str, payload: dict | None = None) -> dict:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read()).get("error", "")
            except Exception:
                msg = ""
            raise RemoteRewardError(f"{self.url}{path}: HTTP {e.code}: {msg}") from None
        except (urllib.error.URLError, OSError) as e:
            raise RemoteRewardError(f"{self.url}{path}: cannot reach the reward service ({e})") from None

    def rewards(self) -> list[dict]:
        return self._request("/v1/rewards")["rewards"]

    def score(self, images: Sequence[Any], prompts: Sequence[str] | str | None, rewards: Sequence[str] | str,
              groups: Sequence[int] | None = None, timeout_s: float | None = None) -> dict:
        if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
            images = list(images)
        payload: dict[str, Any] = {"rewards": [rewards] if isinstance(rewards, str) else list(rewards),
                                   "images": [encode_image(im) for im in images]}
        if prompts is not None:
            payload["prompts"] = prompts if isinstance(prompts, str) else list(prompts)
        if groups is not None:
            payload["groups"] = [int(g) for g in groups]
        if timeout_s is not None:
            payload["timeout_s"] = timeout_s
        return self._request("/v1/score", payload)


class HttpTransport:
    """`rewardbench.remote.RemoteReward` over HTTP (``remote="http://HOST:PORT"``): pixels travel as PNG."""

    def __init__(self, url: str):
        self.client = HttpClient(url)

    def info(self, name: str) -> ServedInfo:
        from .registry import REGISTRY

        spec = REGISTRY.spec(name)
        row = next((r for r in self.client.rewards() if r["name"] == spec.name), None)
        if row is None:
            raise RemoteRewardError(f"reward {spec.name!r} is not served at {self.client.url}")
        return ServedInfo(spec.name, spec, tuple(Provenance.from_dict(p) for p in row["provenance"]),
                          tuple(row["fingerprint"]), takes_uint8=False, build=row["build"], replicas=row["replicas"])

    def score(self, name: str, pixels: Any, prompts: list[str], groups: np.ndarray | None,
              timeout_s: float | None) -> dict[str, Any]:
        images = [torch.from_numpy(np.asarray(p)) for p in pixels]
        res = self.client.score(images, prompts, [name], None if groups is None else groups.tolist(), timeout_s)
        col = res["rewards"][name]
        bad = [e for e in col["errors"] if e]
        if bad:
            raise RemoteRewardError("; ".join(dict.fromkeys(bad)))
        details = {k: np.asarray(v, dtype=np.float32) if all(isinstance(x, (int, float)) for x in v) else v
                   for k, v in col["details"].items()}
        group_details = {int(k): v for k, v in (col.get("group_details") or {}).items()}  # a group reward's
        return {"scores": np.asarray(col["scores"], dtype=np.float32), "details": details,
                "group_details": group_details}
