"""Parity of ``soft-tifa`` and the ``geneval2`` report with GenEval 2's ``evaluation.py`` and ``soft_tifa_analysis.py``
(facebookresearch/GenEval2 @ a6e82d2), executed from the pinned source on the same model and image files.

``evaluation.py`` loads Qwen3-VL-8B-Instruct from the hub at import. Here its two ``from_pretrained`` calls get the
tiny random Qwen3-VL of ``load_reward("soft-tifa", tiny=True)`` (saved by our side as config.json + safetensors;
an 8B model with random weights does not fit this CPU machine's time) and a real transformers ``Qwen3VLProcessor``
built offline around the same tokenizer (tokenizer.json), Qwen3-VL's chat template and the fast (torchvision) Qwen2-VL
image processor that Qwen3-VL-8B-Instruct's preprocessor_config.json names, with its constants (patch 16, mean/std
0.5) and the tiny budget. Everything after that is
the official code: ``soft_tifa(vqa_list, image_filepath)`` per prompt (one ``generate`` per question, the answer
forms summed), ``main``'s ``gmean`` and ``sum/len`` per prompt and ``100 * mean`` over prompts, and
``soft_tifa_analysis.py``'s ``per_skill_analysis`` and ``per_atomicity_analysis``.

Items: eight prompts in GenEval 2's format with 3 to 10 atoms (``per_atomicity_analysis`` needs each of them) and
every skill, on the five photos of `_common.write_photos` (cycled). Ours: the reward on the files read through PIL
(``processor_resize=True``: the fast processor's torchvision resize; the ``exact`` path) and on the decoded pixels
(``torch``), and
`rewardbench.benchmarks.atoms.atom_rows` for the analysis. Cases: ``atoms`` (each question's probability),
``prompt-gm`` / ``prompt-am`` (per prompt), ``benchmark`` (GM and AM x 100, five skills, eight atom counts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _common import git_show, main, version_of, write_photos

REPO = "facebookresearch/GenEval2"
ROOT = Path(__file__).resolve().parents[2]
SKILLS = ("object", "attribute", "count", "position", "verb")


def items() -> list[dict]:
    """Eight GenEval 2 items (the official format), atom counts 3..10, all skills, count answers one..ten."""
    words = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    out = []
    for n in range(3, 11):
        vqa, skills = [["How many cats are in the image?", words[n - 1]]], ["count"]
        extra = [("Are the cats red?", "attribute"), ("Are there any cats in the image?", "object"),
                 ("Are the cats to the left of the dog?", "position"), ("Are the cats jumping?", "verb"),
                 ("Is there a dog in the image?", "object"), ("Is the dog wooden?", "attribute"),
                 ("Is the dog sleeping?", "verb"), ("Is the dog above the table?", "position"),
                 ("Is there a table in the image?", "object")]
        for q, s in extra[:n - 1]:
            vqa.append([q, "Yes"])
            skills.append(s)
        out.append({"prompt": f"{words[n - 1]} red cats, scene {n}", "atom_count": n, "vqa_list": vqa,
                    "skills": skills})
    return out


def ours(work, args):
    import pandas as pd
    from _common import file_pixels

    import rewardbench
    from rewardbench.benchmarks.atoms import atom_rows

    data = work / "geneval2_data.jsonl"
    its = items()
    data.write_text("".join(json.dumps(i) + "\n" for i in its))
    photos = write_photos(work)
    files = [photos[i % len(photos)] for i in range(len(its))]
    (work / "image_paths.json").write_text(json.dumps({it["prompt"]: str(f) for it, f in zip(its, files)}))
    prompts = [it["prompt"] for it in its]
    reward = rewardbench.load_reward("soft-tifa", pretrained=False, tiny=True, data=str(data), processor_resize=True)
    vl = reward.vlm
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in vl.model.state_dict().items()}, str(work / "model.safetensors"))
    vl.model.config.to_json_file(str(work / "config.json"))
    vl.tokenizer.save(str(work / "tokenizer.json"))
    (work / "budget.json").write_text(json.dumps([reward.budget.min_pixels, reward.budget.max_pixels]))
    torch_reward = rewardbench.load_reward("soft-tifa", pretrained=False, tiny=True, data=str(data))
    torch_reward.vlm = vl
    paths: dict[str, dict[str, list[float]]] = {}
    for path, r in (("exact", reward), ("torch", torch_reward)):
        outs = [r(file_pixels(f), [p]) for f, p in zip(files, prompts)]
        atoms = [s for o in outs for s in o.details["atom_scores"][0]]
        table = pd.DataFrame({"j.atom_scores": [json.dumps(o.details["atom_scores"][0]) for o in outs],
                              "j.atom_skills": [json.dumps(o.details["atom_skills"][0]) for o in outs],
                              "j.atom_count": [float(o.details["atom_count"][0]) for o in outs]})
        rows = atom_rows(pd.DataFrame({"model": ["m"] * len(outs)}), table, ["j"])
        v = {(r_.breakdown, r_.key, r_.metric): r_.value for r_ in rows.itertuples()}
        bench = [v[("all", "all", "soft_tifa_gm")], v[("all", "all", "soft_tifa_am")]]
        bench += [v[("skill", s, "soft_tifa_am")] for s in SKILLS]
        bench += [v[("atom_count", str(n), "soft_tifa_gm")] for n in range(3, 11)]
        paths.setdefault("atoms", {})[path] = atoms
        paths.setdefault("prompt-gm", {})[path] = [float(o.details["soft_tifa_gm"][0]) for o in outs]
        paths.setdefault("prompt-am", {})[path] = [float(o.details["soft_tifa_am"][0]) for o in outs]
        paths.setdefault("benchmark", {})[path] = bench
    notes = {"atoms": f"{len(paths['atoms']['exact'])} questions of 8 prompts (3 to 10 atoms), tiny random Qwen3-VL",
             "prompt-gm": "Soft-TIFA GM per prompt (scipy gmean)", "prompt-am": "Soft-TIFA AM per prompt",
             "benchmark": "GM, AM x100; per skill (object, attribute, count, position, verb); per atom count 3..10"}
    return [{"case": c, "reward": "soft-tifa", "paths": p, "note": notes[c]} for c, p in paths.items()]


def _processor(work: Path):
    import transformers
    from tokenizers import Tokenizer

    sys.path.insert(0, str(ROOT))
    from tests.rewards.test_vlm import QWEN3_VL_TEMPLATE

    lo, hi = json.loads((work / "budget.json").read_text())
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(work / "tokenizer.json")),
                                               pad_token="<|endoftext|>", eos_token="<|im_end|>")
    # the fast (torchvision) processor, the class Qwen3-VL-8B-Instruct's preprocessor_config.json names
    cls = getattr(transformers, "Qwen2VLImageProcessorFast", None) or transformers.Qwen2VLImageProcessor
    image = cls(patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                min_pixels=lo, max_pixels=hi, size={"shortest_edge": lo, "longest_edge": hi})
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    return transformers.Qwen3VLProcessor(image_processor=image, tokenizer=tok, video_processor=Qwen3VLVideoProcessor(),
                                         chat_template=QWEN3_VL_TEMPLATE)


def official(work, args):
    import transformers
    from safetensors.torch import load_file

    config = transformers.Qwen3VLConfig.from_json_file(str(work / "config.json"))
    model = transformers.Qwen3VLForConditionalGeneration._from_config(config, attn_implementation="sdpa")
    model.load_state_dict(load_file(str(work / "model.safetensors")))
    model.eval()
    processor = _processor(work)
    transformers.AutoProcessor.from_pretrained = staticmethod(lambda *a, **k: processor)
    transformers.Qwen3VLForConditionalGeneration.from_pretrained = staticmethod(lambda *a, **k: model)
    git_dir, commit = args.sources[REPO]
    ns: dict = {"__name__": "geneval2_evaluation"}
    exec(compile(git_show(git_dir, commit, "evaluation.py"), "evaluation.py", "exec"), ns)
    an: dict = {"__name__": "soft_tifa_analysis"}
    exec(compile(git_show(git_dir, commit, "soft_tifa_analysis.py"), "soft_tifa_analysis.py", "exec"), an)
    data = [json.loads(line) for line in (work / "geneval2_data.jsonl").read_text().splitlines()]
    image_data = json.loads((work / "image_paths.json").read_text())
    score_lists = []
    for d in data:  # main(): soft_tifa per prompt, in the data's order
        _, score_list = ns["soft_tifa"](d["vqa_list"], image_data[d["prompt"]])
        score_lists.append([float(s) for s in score_list])
    gm = [float(ns["gmean"](s)) for s in score_lists]
    am = [sum(s) / len(s) for s in score_lists]
    skills = an["per_skill_analysis"](score_lists, [d["skills"] for d in data])  # object, attribute, count, pos, verb
    atomicity = an["per_atomicity_analysis"](score_lists, [d["atom_count"] for d in data])
    bench = [100 * sum(gm) / len(gm), 100 * sum(am) / len(am)] + [float(x) for x in skills]
    bench += [float(atomicity[n]["accuracy"]) for n in range(3, 11)]
    label = f"{REPO}@{commit[:7]} evaluation.py + soft_tifa_analysis.py, {version_of('transformers')}"
    return {"atoms": {"scores": [s for sl in score_lists for s in sl], "official": label},
            "prompt-gm": {"scores": gm, "official": label}, "prompt-am": {"scores": am, "official": label},
            "benchmark": {"scores": bench, "official": label}}


if __name__ == "__main__":
    main(ours, official)
