"""The reward service's HTTP endpoint and its JSON schema (the client, which needs no Ray, is
`rewardbench.http_client`).

The endpoint (`HttpFrontend`, started by ``rewardbench serve --http-port PORT``) runs beside a service's Ray
actors and forwards each request to the replicas of every reward named, all rewards at once.

``GET /v1/rewards`` lists the served rewards::

    {"rewards": [{"name": "jpeg-compressibility", "replicas": 2, "category": "baseline", "granularity": "image",
                  "higher_is_better": true, "needs_prompt": false, "differentiable": false,
                  "provenance": [{"kind": "none", "location": "", "digest": null, "part": "", "note": ""}],
                  "fingerprint": [0, 0.0, 0.0], "build": {"device": "cpu", ...}}]}

``POST /v1/score`` scores images::

    request:  {"rewards": ["jpeg-compressibility", "clipscore-b32"],   # names or aliases, served here
               "images": ["<base64 PNG or JPEG>", ...],                 # one per item
               "prompts": ["a cat", ...],                              # one per item (optional: prompt-free rewards)
               "groups": [0, 0, 1, ...],                               # optional: group ids for group rewards
               "timeout_s": 60}                                        # optional: per reward
    response: {"n": 2,
               "errors": [null, "images[1]: not a PNG or JPEG image"],  # per item: the item could not be read
               "rewards": {"jpeg-compressibility": {"scores": [-1.83, null],
                                                    "errors": [null, "images[1]: not a PNG or JPEG image"],
                                                    "details": {"jpeg_kb": [1.83, null]},
                                                    "group_details": {}}, ...}}
    (``group_details``: a group reward's details per group, keyed by the request's group ids as strings)

A reward that fails on a batch is retried item by item (group by group for group rewards), so one bad item
fails only its own row; a reward that times out or fails fails only its own column. A malformed request (not
JSON, a reward not served, lists of different lengths) is answered ``400`` with ``{"error": "..."}``.

The client (`rewardbench.http_client.HttpClient`) needs no Ray. Images are decoded as 8-bit RGB: scores equal
those of the local reward on the same decoded pixels (a uint8 batch). A float tensor given to the client is
rounded to 8 bits first; use Ray (`rewardbench.remote`) where exact float pixels matter.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import torch

from .http_client import RequestError, decode_image
from .remote import RayTransport
from .wire import SERVICE_NAME, RemoteTimeoutError, ServedInfo, pack_pixels

DEFAULT_PORT = 8000
MAX_REQUEST_BYTES = 512 * 2**20  # a POST body above this is refused (413) before it is read


def _batch(images: list[np.ndarray]) -> Any:
    """One uint8 ``[B,3,H,W]`` tensor when the images share a size (as a local call on decoded files), else the
    list (the served reward scores per size)."""
    if len({im.shape for im in images}) == 1:
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    return images


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, torch.Tensor):
        return v.tolist()
    return str(v)


# -- the server side ------------------------------------------------------------------------------------------------
class Scoring:
    """What the endpoint does with one request: decode, then every reward at once, each with per-item errors."""

    def __init__(self, transport: RayTransport):
        self.transport = transport
        self.infos: dict[str, ServedInfo] = {}
        self._lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=16)

    def info(self, name: str) -> ServedInfo:
        with self._lock:
            found = next((i for i in self.infos.values() if name in (i.name, *i.spec.aliases)), None)
            if found is None:
                try:
                    found = self.transport.info(name)
                except ValueError as e:
                    raise RequestError(str(e)) from None
                self.infos[found.name] = found
            return found

    def rewards(self) -> dict[str, Any]:
        ray = self.transport.ray
        rows = []
        for name in ray.get(self.transport.directory.names.remote()):
            i = self.info(name)
            rows.append({"name": i.name, "replicas": i.replicas, "category": i.spec.category,
                         "granularity": i.spec.granularity, "higher_is_better": i.spec.higher_is_better,
                         "needs_prompt": i.spec.needs_prompt, "differentiable": False,
                         "provenance": [p.as_dict() for p in i.provenance], "fingerprint": list(i.fingerprint),
                         "build": i.build})
        return {"rewards": rows}

    def score(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise RequestError("the body must be a JSON object")
        names, images = payload.get("rewards"), payload.get("images")
        if isinstance(names, str):
            names = [names]
        if not names or not isinstance(names, list) or not isinstance(images, list) or not images:
            raise RequestError('expected {"rewards": [NAME, ...], "images": [BASE64, ...], "prompts": [...]}')
        n = len(images)
        prompts = payload.get("prompts")
        prompts = [""] * n if prompts is None else [prompts] * n if isinstance(prompts, str) else prompts
        groups = payload.get("groups")
        if not isinstance(prompts, list) or len(prompts) != n or not all(isinstance(p, str) for p in prompts):
            raise RequestError(f"prompts: expected {n} strings (one per image)")
        if groups is not None and (not isinstance(groups, list) or len(groups) != n
                                   or not all(isinstance(g, int) for g in groups)):
            raise RequestError(f"groups: expected {n} integers (one per image)")
        timeout = payload.get("timeout_s")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not timeout > 0):
            raise RequestError(f"timeout_s: expected a number of seconds > 0, got {timeout!r}")
        infos = [self.info(str(r)) for r in names]
        decoded: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for i, data in enumerate(images):
            try:
                decoded.append(decode_image(data if isinstance(data, str) else "", f"images[{i}]"))
                errors.append(None)
            except RequestError as e:
                decoded.append(None)
                errors.append(str(e))
        ok = [i for i in range(n) if decoded[i] is not None]
        jobs = {info.name: self.pool.submit(self._one_reward, info, ok, decoded, prompts, groups, timeout)
                for info in infos}
        out = {}
        for name, job in jobs.items():
            col = job.result()
            for i in range(n):
                if errors[i] is not None:
                    col["errors"][i] = errors[i]
            out[name] = col
        return {"n": n, "errors": errors, "rewards": out}

    def _one_reward(self, info: ServedInfo, ok: list[int], decoded: list, prompts: list[str],
                    groups: list[int] | None, timeout: float | None) -> dict[str, Any]:
        n = len(decoded)
        col: dict[str, Any] = {"scores": [None] * n, "errors": [None] * n, "details": {}, "group_details": {}}
        group_reward = info.spec.granularity == "group"

        def call(idx: list[int]) -> None:
            g = None if groups is None else np.asarray([groups[i] for i in idx], dtype=np.int64)
            ids = None
            if group_reward and g is not None:  # ids local to the call, as the harness gives them
                ids, g = np.unique(g, return_inverse=True)
                g = g.astype(np.int64)
            reply = self.transport.score(info.name, pack_pixels(_batch([decoded[i] for i in idx])),
                                         [prompts[i] for i in idx], g, timeout)
            for k, v in (reply.get("group_details") or {}).items():  # keyed by the request's own group ids
                key = int(ids[int(k)]) if ids is not None else int(k)
                col["group_details"][str(key)] = json.loads(json.dumps(v, default=_jsonable))
            for j, i in enumerate(idx):
                col["scores"][i] = float(reply["scores"][j])
            for k, v in reply["details"].items():
                values = _jsonable(v) if not isinstance(v, list) else v
                for j, i in enumerate(idx):
                    col["details"].setdefault(k, [None] * n)[i] = json.loads(json.dumps(values[j], default=_jsonable))

        if not ok:
            return col
        try:
            call(ok)
        except RemoteTimeoutError as e:
            for i in ok:
                col["errors"][i] = str(e)
        except Exception as batch_error:
            units = [[i] for i in ok]
            if group_reward:
                by: dict[Any, list[int]] = {}
                for i in ok:
                    by.setdefault(None if groups is None else groups[i], []).append(i)
                units = list(by.values())
            if len(units) == 1:  # nothing smaller to retry
                units = []
                for i in ok:
                    col["errors"][i] = str(batch_error)
            for unit in units:
                try:
                    call(unit)
                except Exception as e:
                    for i in unit:
                        col["errors"][i] = str(e)
        return col


class HttpFrontend:
    """The HTTP endpoint of the reward service ``service`` on the connected Ray cluster: `start` serves on
    ``host:port`` from a background thread (port 0: a free port; `url` tells which)."""

    def __init__(self, service: str = SERVICE_NAME, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 address: str = "auto", max_request_bytes: int = MAX_REQUEST_BYTES):
        self.scoring = Scoring(RayTransport(address, service))
        self.host, self.port = host, port
        self.max_request_bytes = max_request_bytes
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1] if self.server else self.port}"

    def start(self) -> HttpFrontend:
        scoring, frontend = self.scoring, self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # no line per request on stderr
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/rewards":
                    self._send(200, scoring.rewards())
                elif self.path.rstrip("/") in ("/healthz", ""):
                    self._send(200, {"ok": True})
                else:
                    self._send(404, {"error": f"no such endpoint {self.path}; try /v1/rewards or POST /v1/score"})

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/score":
                    self._send(404, {"error": f"no such endpoint {self.path}; POST /v1/score"})
                    return
                try:
                    size = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    self._send(400, {"error": "Content-Length is not a number of bytes"})
                    return
                if size > frontend.max_request_bytes:
                    self.close_connection = True  # the body is never read
                    self._send(413, {"error": f"request of {size} bytes, above this service's limit of "
                                              f"{frontend.max_request_bytes}: send fewer images per request"})
                    return
                try:
                    body = self.rfile.read(size)
                    self._send(200, scoring.score(json.loads(body or b"null")))
                except (RequestError, json.JSONDecodeError) as e:
                    self._send(400, {"error": str(e)})
                except Exception as e:
                    self._send(500, {"error": f"{type(e).__name__}: {e}"})

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        self.scoring.pool.shutdown(wait=False)
