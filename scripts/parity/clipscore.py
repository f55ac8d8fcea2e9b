"""Parity of ``clipscore`` / ``clipscore-b32`` with Hessel et al.'s clipscore.py on OpenAI's CLIP code."""

from __future__ import annotations

from _common import (
    DTYPES,
    PROMPTS,
    git_show,
    load_state,
    main,
    openai_clip_in_float64,
    ours_openai_clip,
    stub_module,
    to_dtype,
    version_of,
    watch_inputs,
    write_photos,
)

REPO = "jmhessel/clipscore"
CASES = (("clipscore-b32", "ViT-B-32"), ("clipscore", "ViT-L-14"))


def ours(work, args):
    return ours_openai_clip(work, [(name, arch, f"random {arch}, 'A photo depicts' prefix") for name, arch in CASES],
                            PROMPTS, args.dtype)


def official(work, args):
    import clip  # openai/CLIP (PyPI openai-clip)

    # clipscore.py imports generation_eval_utils (pycocoevalcap metrics) for reference-based scores only
    stub_module("generation_eval_utils")
    if args.dtype == "float64":
        openai_clip_in_float64()
    git_dir, commit = args.sources[REPO]
    ns: dict = {"__name__": "clipscore"}
    exec(compile(git_show(git_dir, commit, "clipscore.py"), "clipscore.py", "exec"), ns)
    paths = [str(p) for p in write_photos(work / "photos")]
    out = {}
    for _, arch in CASES:
        # clip.load() without a download: build_model() on the shared state dict, .float() on CPU as load() does
        model = clip.model.build_model(load_state(work / f"{arch}.safetensors")).float().eval()
        with watch_inputs(to_dtype(model, args.dtype)) as inputs:
            _, per, _ = ns["get_clip_score"](model, paths, list(PROMPTS), "cpu")
        out[arch] = {"scores": [float(v) for v in per], "inputs": inputs,
                     "official": f"{REPO}@{commit[:7]} get_clip_score + {version_of('openai-clip')}"}
    return out


if __name__ == "__main__":
    main(ours, official, DTYPES)
