"""Parity of ``ocr`` with Flow-GRPO's ``flow_grpo/ocr.py`` (``OcrScorer.__call__``), on the same recognised text.

Flow-GRPO's scorer calls PaddleOCR 2.9.1 (PaddlePaddle), which cannot run here; what is compared is everything
after the OCR: the target taken from the prompt, the lines joined and filtered, the normalisation, the containment
test, python-Levenshtein's distance, the cap and the reward. The official ``OcrScorer`` runs from its pinned source
(yifan123/flow_grpo, `rewardbench.rewards.ocr.FLOW_GRPO_COMMIT`) with ``paddleocr`` replaced by a stand-in whose
``PaddleOCR(...).ocr(img, cls=False)`` returns, in PaddleOCR 2.9.1's format (``[[[box, (text, confidence)], ...]]``,
``[None]`` when nothing is read), the lines our reward's OCR read in that same image; the stand-in finds them by the
image's bytes, so both sides' OCR calls received the same pixels (the ``inputs`` column). Cases:

* ``rendered``: the 288 images of ``scripts/ocr/render_text_set.py`` with their prompts; ours is
  ``load_reward("ocr")`` on the decoded PNGs;
* ``rendered-wrong``: the same images against another text of the set (most rewards strictly between 0 and 1);
* ``hand-made``: lines written by hand for the formula's corners (a line of confidence 0, nothing read, containment,
  case, spaces, the cap, a second quoted span, non-ASCII case), ours by ``ocr_reward(join_texts(lines),
  quoted_target(prompt))``, the functions our reward's ``score`` calls.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from _common import git_show, main, stub_module, version_of

REPO, FILE = "yifan123/flow_grpo", "flow_grpo/ocr.py"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ocr"))  # the rendered-text set's generator

HAND_MADE = [  # (prompt, [(text, confidence), ...]) as an OCR might return them
    ('a sign that says "Hello World"', [("HELLO", 0.93), ("WORLD", 0.91)]),
    ('a shop sign "OPEN 24 HOURS"', [("OPEN", 0.97)]),
    ('a mug with "coffee" on it', []),
    ('a mug with "coffee" on it', [("coffee", 0.0)]),  # Flow-GRPO skips a line of confidence 0
    ('a bakery sign reading "Bakery"', [("Welcome to the", 0.88), ("BAKERY", 0.95)]),
    ('a sign "STOP"', [("a long line of text that has nothing to do with it", 0.9)]),
    ('a poster with the text "  Flow   GRPO "', [("flowgrpo", 0.7)]),
    ('a "first" and a "second" quoted span', [("second", 0.99)]),
    ('a street sign "STRASSE"', [("Straße", 0.8)]),
    ('a plaque "Est. 1987"', [("EST.1937", 0.66)]),
]


def _hash(array) -> str:
    import numpy as np

    a = np.ascontiguousarray(array)
    return hashlib.sha256(f"{a.shape}{a.dtype}".encode() + a.tobytes()).hexdigest()[:16]


def _rendered(work: Path):
    """The rendered set (written once into WORK/rendered): rows of the manifest and their decoded RGB arrays."""
    import numpy as np
    from PIL import Image
    from render_text_set import render_set

    folder = work / "rendered"
    manifest = folder / "manifest.json"
    if not manifest.exists():
        rows = render_set(folder)
        manifest.write_text(json.dumps(rows))
    rows = json.loads(manifest.read_text())
    return rows, [np.array(Image.open(folder / r["image"]).convert("RGB")) for r in rows]


def ours(work, args):
    import numpy as np
    import torch
    from render_text_set import wrong_text

    import rewardbench
    from rewardbench.rewards.ocr import join_texts, ocr_reward, quoted_target

    rows, arrays = _rendered(work)
    reward = rewardbench.load_reward("ocr")
    prompts = [r["prompt"] for r in rows]
    wrong = [f'a sign that says "{wrong_text(r["text"])}"' for r in rows]
    scores: dict[str, list[float]] = {"rendered": [], "rendered-wrong": []}
    lines, recognized = [], []
    for start in range(0, len(rows), 16):
        batch = torch.from_numpy(np.stack(arrays[start:start + 16])).permute(0, 3, 1, 2)  # uint8, as the harness
        lines += reward.read_text(batch)
        for case, ps in (("rendered", prompts), ("rendered-wrong", wrong)):
            out = reward(batch, ps[start:start + 16])
            scores[case] += out.scores.tolist()
            if case == "rendered":
                recognized += out.details["recognized"]
    if recognized != [join_texts(ls) for ls in lines]:
        raise RuntimeError("the reward's recognised text differs from read_text's lines: the OCR is not deterministic")
    hashes = [_hash(a) for a in arrays]
    (work / "lines.json").write_text(json.dumps({"lines": dict(zip(hashes, lines)), "prompts": prompts,
                                                 "wrong": wrong, "hand_made": HAND_MADE}))
    partial = {c: sum(0 < s < 1 for s in v) for c, v in scores.items()}
    rendered = [{"case": c, "reward": "ocr", "paths": {"exact": v}, "inputs": {"image": hashes},
                 "note": f"{len(v)} rendered images ({partial[c]} rewards strictly in (0, 1)), "
                         + ("their prompts" if c == "rendered" else "another text's prompt")
                         + "; the same recognised lines on both sides"} for c, v in scores.items()]
    hand = [ocr_reward(join_texts(ls), quoted_target(p))[0] for p, ls in HAND_MADE]
    return rendered + [{"case": "hand-made", "reward": "ocr", "paths": {"exact": hand},
                        "note": f"{len(hand)} hand-made OCR results: confidence 0, nothing read, containment, case, "
                                "spaces, the cap, two quoted spans, non-ASCII"}]


def official(work, args):
    import numpy as np
    from PIL import Image

    shared = json.loads((work / "lines.json").read_text())
    seen: list[str] = []
    script: dict[str, list] = {}  # hand-made cases: the next image's lines, by its hash

    class PaddleOCR:  # the stand-in: what PaddleOCR 2.9.1's ocr() returns, from the lines our OCR read
        def __init__(self, **kwargs):
            assert kwargs == {"use_angle_cls": False, "lang": "en", "use_gpu": False, "show_log": False}, kwargs

        def ocr(self, img, cls=True):
            assert cls is False and isinstance(img, np.ndarray) and img.dtype == np.uint8
            key = _hash(img)
            seen.append(key)
            lines = script.get(key, shared["lines"].get(key))
            if lines is None:
                raise KeyError(f"no recognised lines for image {key}")
            box = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
            return [[[box, (text, conf)] for text, conf in lines] or None]

    stub_module("paddleocr", PaddleOCR=PaddleOCR)
    git_dir, commit = args.sources[REPO]
    ns: dict = {"__name__": "flow_grpo.ocr"}
    exec(compile(git_show(git_dir, commit, FILE), FILE, "exec"), ns)
    scorer = ns["OcrScorer"](use_gpu=False)
    label = f"{REPO}@{commit[:7]} OcrScorer + {version_of('levenshtein')}"

    rows, _ = _rendered(work)
    arrays = [np.array(Image.open(work / "rendered" / r["image"]).convert("RGB")) for r in rows]
    out = {}
    for case, prompts in (("rendered", shared["prompts"]), ("rendered-wrong", shared["wrong"])):
        seen.clear()
        out[case] = {"scores": [float(s) for s in scorer(arrays, prompts)], "official": label,
                     "inputs": {"image": list(seen)}}
    hand = []
    for i, (prompt, lines) in enumerate(shared["hand_made"]):
        img = np.full((8, 8, 3), i, dtype=np.uint8)  # a distinct image per case: the stand-in finds its lines
        script[_hash(img)] = lines
        hand += [float(s) for s in scorer([img], [prompt])]
    out["hand-made"] = {"scores": hand, "official": label}
    return out


if __name__ == "__main__":
    main(ours, official)
