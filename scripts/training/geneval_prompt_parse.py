"""Does the ``geneval`` reward read Flow-GRPO's GenEval prompts as Flow-GRPO's metadata says?

Flow-GRPO trains and evaluates with GenEval's per-prompt metadata (``tag``, ``include`` [class, count, colour,
position], ``exclude``) in its ``dataset/geneval/*_metadata.jsonl``. Our ``geneval`` reward takes no metadata: it
parses each prompt (``parse_prompt(prompt).geneval_spec()``), so a trainer can give it prompts alone. This script
parses every prompt of such a file and compares the spec with the row's metadata: include (in order, as GenEval's
positions refer to include indices), exclude, each class, count, colour and position. What is only spelling is
normalised first: GenEval's names for three COCO classes ("computer mouse", "tv remote", "computer keyboard";
djghosh13/geneval prompts/object_names.txt) are the COCO names our detector reports ("mouse", "remote",
"keyboard"), and a missing or empty ``exclude`` is no exclude. Writes ``geneval_prompt_parse.json`` and
``geneval_prompt_parse.md`` into ``--out``: agreement overall and per tag, which fields differ, and examples.

Flow-GRPO's files come from its repository (yifan123/flow_grpo, MIT; ``dataset/geneval/test_metadata.jsonl``: GenEval's
553 prompts, each four times). A ``LABEL=PATH`` names a file in the tables::

    git --git-dir=/path/to/flow_grpo/.git show ac4c86e:dataset/geneval/test_metadata.jsonl > /tmp/geneval_test.jsonl
    .venv/bin/python scripts/training/geneval_prompt_parse.py flow_grpo/geneval/test=/tmp/geneval_test.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

RESULTS = Path(__file__).resolve().parent / "results"
EXAMPLES = 5  # disagreements shown per file and tag


def normalise(spec: dict) -> dict:
    """A GenEval spec with GenEval's class spellings as COCO's, ``position`` as a list and no empty ``exclude``."""
    from rewardbench.rewards.parts import GENEVAL_NAMES

    def item(c: dict) -> dict:
        out = {**c, "class": GENEVAL_NAMES.get(c["class"], c["class"])}
        if "position" in out:
            out["position"] = list(out["position"])
        return out

    out = {"include": [item(c) for c in spec.get("include") or []]}
    if spec.get("exclude"):
        out["exclude"] = [item(c) for c in spec["exclude"]]
    return out


def differences(mine: dict, theirs: dict) -> list[str]:
    """Which parts of two normalised specs differ: ``include.count`` (same length, an object's classes equal but
    not its counts), ``include.length``, ``exclude``, ..."""
    out = []
    a, b = mine["include"], theirs["include"]
    if len(a) != len(b):
        out.append("include.length")
    else:
        for key in ("class", "count", "color", "position"):
            if any(x.get(key) != y.get(key) for x, y in zip(a, b)):
                out.append(f"include.{key}")
    if mine.get("exclude") != theirs.get("exclude"):
        out.append("exclude")
    return out


def measure(rows: list[dict]) -> dict:
    """Agreement of the parsed spec with each row's metadata: overall, per tag, per differing field, examples."""
    from rewardbench.rewards.parts import parse_prompt

    total, agree, fields = Counter(), Counter(), Counter()
    examples: dict[str, list[dict]] = defaultdict(list)
    unique, unique_agree = {}, {}
    for r in rows:
        tag = r.get("tag", "?")
        mine, theirs = normalise(parse_prompt(r["prompt"]).geneval_spec()), normalise(r)
        diff = differences(mine, theirs)
        total[tag] += 1
        agree[tag] += not diff
        unique[r["prompt"]] = tag
        unique_agree[r["prompt"]] = not diff
        fields.update(diff)
        if diff and len(examples[tag]) < EXAMPLES and r["prompt"] not in {e["prompt"] for e in examples[tag]}:
            examples[tag].append({"prompt": r["prompt"], "differs": diff, "parsed": mine, "metadata": theirs})
    n = sum(total.values())
    return {"rows": n, "agree": sum(agree.values()), "share": sum(agree.values()) / n if n else float("nan"),
            "unique_prompts": len(unique), "unique_agree": sum(unique_agree.values()),
            "per_tag": {t: {"rows": total[t], "agree": agree[t], "share": agree[t] / total[t]} for t in sorted(total)},
            "differing_fields": dict(fields.most_common()), "examples": dict(examples)}


def read_rows(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{n}: not JSON ({e})") from None
    if not rows or any("prompt" not in r or "include" not in r for r in rows):
        raise SystemExit(f"{path}: expected GenEval metadata rows (JSON lines with prompt, tag, include, exclude)")
    return rows


def markdown(results: dict[str, dict], command: str) -> str:
    lines = ["# GenEval prompts parsed by the `geneval` reward against Flow-GRPO's metadata", "",
             "Written by `scripts/training/geneval_prompt_parse.py`: each prompt parsed by the reward's parser "
             "(`parse_prompt(prompt).geneval_spec()`) and compared with the file's own `include`/`exclude` "
             "(after writing GenEval's three renamed COCO classes as COCO's).", "", "```bash", command, "```", ""]
    lines += ["| file | tag | rows | agree | share |", "| --- | --- | --- | --- | --- |"]
    for label, res in results.items():
        for tag, t in res["per_tag"].items():
            lines.append(f"| {label} | {tag} | {t['rows']} | {t['agree']} | {t['share']:.2%} |")
        lines.append(f"| {label} | **all** ({res['unique_prompts']} distinct prompts, {res['unique_agree']} agree) | "
                     f"{res['rows']} | {res['agree']} | {res['share']:.2%} |")
    for label, res in results.items():
        if res["differing_fields"]:
            lines += ["", f"## Disagreements in {label}", "",
                      "Fields that differ (rows): " + ", ".join(f"{k} {v}" for k, v in res["differing_fields"].items()),
                      ""]
            for tag, exs in res["examples"].items():
                for e in exs:
                    lines.append(f"- {tag}: `{e['prompt']}` ({', '.join(e['differs'])}): parsed "
                                 f"`{json.dumps(e['parsed'])}`, metadata `{json.dumps(e['metadata'])}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="GenEval metadata JSON-lines files, each PATH or LABEL=PATH")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for the .json and .md (default: %(default)s)")
    args = ap.parse_args(argv)
    results = {}
    for spec in args.files:
        label, _, path = spec.rpartition("=") if "=" in spec else (spec, "", spec)
        results[label] = measure(read_rows(Path(path).expanduser()))
    command = ".venv/bin/python scripts/training/geneval_prompt_parse.py " + " ".join(args.files)
    if args.out != RESULTS:
        command += f" --out {args.out}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "geneval_prompt_parse.json").write_text(json.dumps({"command": command, "results": results},
                                                                   indent=2) + "\n")
    (args.out / "geneval_prompt_parse.md").write_text(markdown(results, command))
    for label, res in results.items():
        print(f"{label}: {res['agree']}/{res['rows']} rows agree ({res['share']:.2%}); "
              f"{res['unique_agree']}/{res['unique_prompts']} distinct prompts")
    return results


if __name__ == "__main__":
    main()
