"""A rendered-text set for the ``ocr`` reward, and how well the reward reads it.

Renders words and phrases on 512x512 images (the resolution Flow-GRPO trains its OCR task at) in five fonts that
ship with matplotlib, three text sizes, four colour schemes and four backgrounds (plain, gradient, noise, a real
photo from `rewardbench.samples`), writes them as lossless PNGs with a manifest whose prompts quote the text
(``a sign that says "OPEN 24 HOURS"``), then scores them with ``rewardbench.load_reward("ocr")`` and reports, per
condition: how often the recognised text equals the target after Flow-GRPO's normalisation (spaces removed,
lower case), how often the reward is 1 (the target is contained in the recognised text), the mean reward, and the
mean reward of the same image against a wrong prompt (another text of the set, from the recognised text the reward
already returned: no second OCR pass). Speed: images per second of the reward's calls on decoded uint8 batches.

    python scripts/ocr/render_text_set.py --out /tmp/ocr-set          # render, score -> scripts/ocr/results/
    python scripts/ocr/render_text_set.py --out /tmp/ocr-set --render-only
    rewardbench score --model ocr --manifest /tmp/ocr-set/manifest.csv --out /tmp/ocr-scores

Each condition is one factor level across the whole set: every text is rendered at every size on every background
(24 x 3 x 4 = 288 images), the font and colour scheme rotating so that each level of one meets every level of the
others. Everything is seeded: the same command writes the same images.
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIDE = 512  # Flow-GRPO's OCR task trains SD3.5 at 512x512
SEED = 26

TEXTS = ("coffee", "OPEN", "Welcome", "STOP", "Bakery", "Diffusion", "Hello World", "OPEN 24 HOURS",
         "Fresh Bread Daily", "No Parking", "Happy Birthday Anna", "rewardbench", "Route 66", "Est. 1987",
         "Good Morning", "SALE 50% OFF", "The Quick Brown Fox", "Library", "Exit", "Pizza & Pasta",
         "Mountain View", "Keep Calm", "Flow GRPO", "Thank You")
# matplotlib's bundled fonts (matplotlib is a dependency: the same files everywhere)
FONTS = {"sans": "DejaVuSans.ttf", "serif-bold": "DejaVuSerif-Bold.ttf", "mono": "DejaVuSansMono.ttf",
         "italic": "STIXGeneralItalic.ttf", "sans-bold-oblique": "DejaVuSans-BoldOblique.ttf"}
SIZES = {"small": 20, "medium": 40, "large": 80}  # font size in px on the 512 px canvas (long phrases wrap)
# (text colour, background colour)
COLOURS = {"dark-on-light": ((20, 20, 20), (245, 245, 240)), "light-on-dark": ((250, 250, 250), (25, 35, 70)),
           "red-on-yellow": ((200, 30, 30), (250, 220, 90)), "low-contrast": ((105, 105, 105), (165, 165, 165))}
BACKGROUNDS = ("plain", "gradient", "noise", "photo")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # rewardbench.samples: real photos bundled with scikit-image
TEMPLATES = ('a sign that says "{}"', 'a storefront with the words "{}" painted above the door',
             'a poster with the text "{}"', 'a neon sign reading "{}"')
FACTORS = ("size", "background", "font", "colour")


def font_path(name: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FONTS[name]


def background(kind: str, colour: tuple[int, int, int], photo: int, rng: np.random.Generator) -> np.ndarray:
    """A 512x512 RGB uint8 backdrop of ``kind`` around ``colour`` (``photo``: which of `PHOTOS`)."""
    base = np.array(colour, dtype=np.float32)
    if kind == "plain":
        img = np.broadcast_to(base, (SIDE, SIDE, 3))
    elif kind == "gradient":  # from the colour to its complement's mid-tone, at an angle that changes per image
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:SIDE, 0:SIDE] / (SIDE - 1)
        t = (np.cos(angle) * xx + np.sin(angle) * yy)
        t = ((t - t.min()) / (t.max() - t.min()))[..., None]
        other = (255 - base) * 0.5 + base * 0.5
        img = base * (1 - t) + other * t
    elif kind == "noise":  # Gaussian pixel noise, sigma 40 of 255
        img = base + rng.normal(0, 40, (SIDE, SIDE, 3))
    elif kind == "photo":
        from PIL import Image

        from rewardbench.samples import sample_photo

        im = Image.fromarray(sample_photo(PHOTOS[photo % len(PHOTOS)]))
        w, h = im.size
        s = min(w, h)  # the centred square, resized to the canvas
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((SIDE, SIDE))
        img = np.asarray(im, dtype=np.float32)
    else:
        raise ValueError(f"unknown background {kind!r}")
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def wrap(draw, text: str, font, width: int) -> list[str]:
    """Greedy word wrap of ``text`` to lines at most ``width`` px wide (a single word may be wider)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def render(text: str, font: str, size: str, colour: str, kind: str, photo: int, rng: np.random.Generator):
    """One image: ``text`` centred (with a random offset) on a ``kind`` background. Returns (RGB uint8 array,
    number of lines, font size used)."""
    from PIL import Image, ImageDraw, ImageFont

    fg, bg = COLOURS[colour]
    im = Image.fromarray(background(kind, bg, photo, rng))
    draw = ImageDraw.Draw(im)
    px = SIZES[size]
    while True:  # wrap at 90% of the width; shrink only if one word alone is too wide
        f = ImageFont.truetype(str(font_path(font)), px)
        lines = wrap(draw, text, f, int(0.9 * SIDE))
        if max(draw.textlength(line, font=f) for line in lines) <= 0.9 * SIDE or px <= 8:
            break
        px -= 2
    block = "\n".join(lines)
    x0, y0, x1, y1 = draw.multiline_textbbox((0, 0), block, font=f, align="center")
    w, h = x1 - x0, y1 - y0
    dx = int(rng.uniform(-0.5, 0.5) * (SIDE - w) * 0.6)
    dy = int(rng.uniform(-0.5, 0.5) * (SIDE - h) * 0.6)
    draw.multiline_text(((SIDE - w) // 2 - x0 + dx, (SIDE - h) // 2 - y0 + dy), block, font=f, fill=fg,
                        align="center")
    return np.asarray(im), len(lines), px


def render_set(out: Path, texts=TEXTS, sizes=tuple(SIZES), backgrounds=BACKGROUNDS) -> list[dict]:
    """Render the set into ``out/images`` with ``out/manifest.csv`` (image, prompt and the conditions)."""
    from PIL import Image

    rng = np.random.default_rng(SEED)
    (out / "images").mkdir(parents=True, exist_ok=True)
    fonts, colours = list(FONTS), list(COLOURS)
    rows = []
    for i, text in enumerate(texts):
        for j, size in enumerate(sizes):
            for k, kind in enumerate(backgrounds):
                n = len(rows)
                font, colour = fonts[(i + j + k) % len(fonts)], colours[(i + 2 * j + k) % len(colours)]
                arr, n_lines, px = render(text, font, size, colour, kind, i + j, rng)
                name = f"images/{n:03d}.png"
                Image.fromarray(arr).save(out / name)
                rows.append({"image": name, "prompt": TEMPLATES[n % len(TEMPLATES)].format(text), "text": text,
                             "font": font, "size": size, "colour": colour, "background": kind,
                             "lines": n_lines, "font_px": px})
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


def wrong_text(text: str, texts=TEXTS) -> str:
    """The set's text 7 places on: the prompt of the 'wrong prompt' column."""
    return texts[(texts.index(text) + 7) % len(texts)]


def score_set(out: Path, rows: list[dict], det_settings: str, batch_size: int = 16) -> tuple[list[dict], dict]:
    """Score the rendered images with ``load_reward("ocr", det_settings=...)`` (decoded PNGs as uint8 batches, the
    way the scoring harness hands them over): each row with its recognised text, distance, reward, exact match and
    wrong-prompt reward, and the speed of the reward's calls."""
    import torch
    from PIL import Image

    import rewardbench
    from rewardbench.rewards.ocr import normalize, ocr_reward

    reward = rewardbench.load_reward("ocr", det_settings=det_settings)
    reward(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), ['"warm-up"'])  # the engines are built on first use
    seconds, scored = 0.0, []
    for start in range(0, len(rows), batch_size):
        part = rows[start:start + batch_size]
        batch = torch.from_numpy(np.stack([np.array(Image.open(out / r["image"]).convert("RGB")) for r in part]))
        t = time.perf_counter()
        res = reward(batch.permute(0, 3, 1, 2), [r["prompt"] for r in part])
        seconds += time.perf_counter() - t
        for r, s, rec, d in zip(part, res.scores.tolist(), res.details["recognized"],
                                res.details["distance"].tolist()):
            scored.append({**r, "det_settings": det_settings, "recognized": rec, "distance": int(d), "reward": s,
                           "exact": normalize(rec) == normalize(r["text"]),
                           "wrong_reward": ocr_reward(rec, wrong_text(r["text"]))[0]})
    return scored, {"det_settings": det_settings, "images": len(rows), "seconds": seconds,
                    "images_per_s": len(rows) / seconds, "batch_size": batch_size,
                    "threads": torch.get_num_threads(), "weights": reward.weights_used}


def summarise(scored: list[dict], speeds: list[dict]) -> list[dict]:
    """Per detector setting: one row for the whole set and one per factor level (with the setting's speed)."""
    out = []
    for speed in speeds:
        det = speed["det_settings"]
        rows = [r for r in scored if r["det_settings"] == det]
        groups = [("all", "all", rows)] + [(f, level, [r for r in rows if r[f] == level])
                                           for f in FACTORS for level in dict.fromkeys(r[f] for r in rows)]
        for factor, level, rs in groups:
            n = len(rs)
            out.append({"det_settings": det, "factor": factor, "level": level, "n": n,
                        "exact_match": round(sum(r["exact"] for r in rs) / n, 4),
                        "reward_1": round(sum(r["reward"] == 1.0 for r in rs) / n, 4),
                        "mean_reward": round(sum(r["reward"] for r in rs) / n, 4),
                        "mean_wrong_prompt_reward": round(sum(r["wrong_reward"] for r in rs) / n, 4),
                        "images_per_s": round(speed["images_per_s"], 2)})
    return out


def write_results(scored: list[dict], summary: list[dict], speeds: list[dict], results: Path, command: str) -> None:
    """``rendered_text.csv`` (the summary), ``rendered_text_images.csv`` (every image and setting) and
    ``rendered_text.md`` (the summary side by side per setting, the speeds, the default setting's misses)."""
    import onnxruntime

    results.mkdir(parents=True, exist_ok=True)
    with open(results / "rendered_text.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary[0]))
        w.writeheader()
        w.writerows(summary)
    cols = ["det_settings", "image", "text", "font", "size", "colour", "background", "lines", "font_px",
            "recognized", "distance", "reward", "exact", "wrong_reward"]
    with open(results / "rendered_text_images.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows({**r, "reward": round(r["reward"], 6), "wrong_reward": round(r["wrong_reward"], 6)}
                    for r in scored)
    dets = [s["det_settings"] for s in speeds]
    by = {(s["det_settings"], s["factor"], s["level"]): s for s in summary}
    head = "| factor | level | n | " + " | ".join(
        f"exact match ({d}) | reward = 1 ({d}) | mean reward ({d}) | wrong prompt ({d})" for d in dets) + " |"
    lines = [head, "|" + " --- |" * (3 + 4 * len(dets))]
    for s in (s for s in summary if s["det_settings"] == dets[0]):
        cells = [by[d, s["factor"], s["level"]] for d in dets]
        lines.append(f"| {s['factor']} | {s['level']} | {s['n']} | " + " | ".join(
            f"{c['exact_match']:.1%} | {c['reward_1']:.1%} | {c['mean_reward']:.3f} | "
            f"{c['mean_wrong_prompt_reward']:.3f}" for c in cells) + " |")
    first = speeds[0]
    lines += ["", "Speed of the reward's calls (batches of {b} decoded uint8 {side}x{side} images, {t} torch threads, "
              "CPU {cpu}, onnxruntime {ort}): ".format(b=first["batch_size"], side=SIDE, t=first["threads"],
                                                      cpu=platform.processor() or platform.machine(),
                                                      ort=onnxruntime.__version__)
              + "; ".join(f"{s['det_settings']} {s['images_per_s']:.2f} images/s ({s['images']} images in "
                          f"{s['seconds']:.1f} s)" for s in speeds) + f". Weights: {first['weights']}.", "",
              f"Command: `{command}`", ""]
    misses = [r for r in scored if r["det_settings"] == dets[0] and r["reward"] < 1.0]
    lines += [f"Images whose reward is below 1 with {dets[0]} ({len(misses)} of {first['images']}; every image and "
              "setting in `rendered_text_images.csv`):", "",
              "| image | text | size | background | font | colour | recognised | reward |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['image']} | {r['text']} | {r['size']} | {r['background']} | {r['font']} | {r['colour']} "
              f"| {r['recognized'].replace('|', '/')} | {r['reward']:.3f} |" for r in misses]
    (results / "rendered_text.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for the images and manifest.csv")
    ap.add_argument("--results", type=Path, default=HERE / "results", help="where the tables go")
    ap.add_argument("--render-only", action="store_true", help="write the images and manifest, score nothing")
    ap.add_argument("--det-settings", default="paddleocr,rapidocr",
                    help="the ocr reward's det_settings to measure, comma-separated (the first is the default's)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, help="score only the first N images (a quick check)")
    args = ap.parse_args(argv)
    rows = render_set(args.out)
    print(f"wrote {len(rows)} images and {args.out / 'manifest.csv'}")
    if args.render_only:
        return {"rows": rows}
    rows = rows[:args.limit] if args.limit else rows
    scored, speeds = [], []
    for det in args.det_settings.split(","):
        part, speed = score_set(args.out, rows, det, args.batch_size)
        scored += part
        speeds.append(speed)
        print(f"{det}: {speed['images_per_s']:.2f} images/s")
    summary = summarise(scored, speeds)
    command = "python scripts/ocr/render_text_set.py --out /tmp/ocr-set" + (
        f" --det-settings {args.det_settings}" if args.det_settings != "paddleocr,rapidocr" else "") + (
        f" --limit {args.limit}" if args.limit else "")
    write_results(scored, summary, speeds, args.results, command)
    for s in summary:
        print(f"{s['det_settings']:<10} {s['factor']:<10} {s['level']:<18} n={s['n']:<4} exact {s['exact_match']:.1%}"
              f"  reward=1 {s['reward_1']:.1%}  mean {s['mean_reward']:.3f}  wrong {s['mean_wrong_prompt_reward']:.3f}")
    print(f"tables in {args.results}")
    return {"rows": scored, "summary": summary, "speeds": speeds}


if __name__ == "__main__":
    main()
