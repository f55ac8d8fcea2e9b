"""GenEval 2's data format, shared by the zoo (the ``soft-tifa`` judge) and the prompt sets (``geneval2``).

GenEval 2 (Kamath et al., arXiv 2512.16853; github.com/facebookresearch/GenEval2 @ a6e82d2, ``README.md`` and
``geneval2_data.jsonl``): 800 prompts, one JSON object a line::

    {"prompt": "four white bicycles in front of three plastic cows", "atom_count": 7,
     "vqa_list": [["How many bicycles are in the image?", "four"], ["Are the bicycles white?", "Yes"], ...],
     "skills": ["count", "attribute", ...]}

one question-answer pair per atom of the prompt (plus an ``object`` question for "a"/"an", not counted in
``atom_count``) and the skill of each (object, attribute, count, position, verb). The data is licensed CC BY-NC 4.0
by Meta Platforms: it is read from a local copy or the official URL, never shipped with rewardbench.

    >>> line = ('{"prompt": "two red cats", "atom_count": 2, "vqa_list": [["How many cats are in the image?", '
    ...         '"two"], ["Are the cats red?", "Yes"]], "skills": ["count", "attribute"]}')
    >>> item = parse_geneval2(line)[0]
    >>> item.prompt, item.atom_count, item.skills
    ('two red cats', 2, ('count', 'attribute'))
    >>> answer_forms(*item.vqa[0])
    ('two', 'Two', ' two', ' Two', '2', ' 2')
"""

from __future__ import annotations

import dataclasses
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

OFFICIAL_URL = "https://raw.githubusercontent.com/facebookresearch/GenEval2/main/geneval2_data.jsonl"
LICENSE = "CC BY-NC 4.0 (GenEval 2 data, Meta Platforms; not shipped with rewardbench)"
PAPER = ("Kamath et al., GenEval 2: Addressing Benchmark Drift in Text-to-Image Evaluation, 2025, "
         "arXiv 2512.16853")
SKILLS = ("object", "attribute", "count", "position", "verb")  # soft_tifa_analysis.py per_skill_analysis
ATOM_COUNTS = tuple(range(3, 11))  # soft_tifa_analysis.py per_atomicity_analysis: atomicity 3..10

# evaluation.py return_numeric_string: number words to digits, anything else to the literal 'other'
_NUMERALS = {w: str(i) for i, w in enumerate(("one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                                             "ten"), 1)}
YES_FORMS = ("Yes", "yes", " yes", " Yes")  # evaluation.py soft_tifa: the answer forms of a yes/no question


class GenEval2DataError(OSError):
    """The GenEval 2 data could not be read (the message says from where and how to use a local copy)."""


@dataclasses.dataclass(frozen=True)
class GenEval2Item:
    """One GenEval 2 prompt: its questions with their expected answers, the skill of each, its atom count."""

    prompt: str
    atom_count: int
    vqa: tuple[tuple[str, str], ...]
    skills: tuple[str, ...]


def answer_forms(question: str, answer: str) -> tuple[str, ...]:
    """The written forms whose first tokens' probabilities Soft-TIFA sums (evaluation.py ``soft_tifa``): for a
    "How many" question the answer, capitalised, each with a leading space, and its digits (``'other'`` when it is
    no number word from one to ten, as ``return_numeric_string`` returns); for any other question Yes/yes with and
    without a space, whatever its expected answer (GenEval 2's other answers are all "Yes").

    >>> answer_forms("Is there a dog?", "Yes")
    ('Yes', 'yes', ' yes', ' Yes')
    >>> answer_forms("How many cups are in the image?", "zero")[-2:]
    ('other', ' other')
    """
    if question.startswith("How many"):
        digits = _NUMERALS.get(answer, "other")
        return (answer, answer.capitalize(), " " + answer, " " + answer.capitalize(), digits, " " + digits)
    return YES_FORMS


def parse_geneval2(text: str, where: str = "GenEval 2 data") -> list[GenEval2Item]:
    """The items of a ``geneval2_data.jsonl`` text, in order; a malformed line raises ``ValueError`` naming it."""
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            vqa = tuple((str(q), str(a)) for q, a in d["vqa_list"])
            skills = tuple(str(s) for s in d["skills"])
            item = GenEval2Item(str(d["prompt"]), int(d["atom_count"]), vqa, skills)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where} line {n}: not a GenEval 2 item ({type(e).__name__}: {e}); each line holds "
                             "prompt, atom_count, vqa_list and skills") from None
        if not vqa or len(vqa) != len(skills):
            raise ValueError(f"{where} line {n}: {len(vqa)} questions but {len(skills)} skills (one skill per "
                             "question, at least one question)")
        items.append(item)
    return items


def read_geneval2(source: str | os.PathLike | None = None, timeout: float = 10.0) -> list[GenEval2Item]:
    """GenEval 2's items from a local ``geneval2_data.jsonl``, a URL, or (None) the official URL. Offline, a URL
    fails within ``timeout`` seconds with a `GenEval2DataError` saying how to use a local copy."""
    s = str(source) if source is not None else OFFICIAL_URL
    if s.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(s, timeout=timeout) as resp:  # noqa: S310 - an https URL of the data
                text = resp.read().decode("utf-8")
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise GenEval2DataError(
                f"cannot download the GenEval 2 data from {s} ({type(e).__name__}: {e}). Offline? Download "
                f"geneval2_data.jsonl from github.com/facebookresearch/GenEval2 ({LICENSE}) and pass its path "
                "(run-benchmark: --path geneval2=FILE; the judge: --config soft-tifa:data=FILE).") from None
        return parse_geneval2(text, s)
    p = Path(s).expanduser()
    if not p.is_file():
        raise GenEval2DataError(f"GenEval 2 data file {p} does not exist (geneval2_data.jsonl from "
                                "github.com/facebookresearch/GenEval2)")
    return parse_geneval2(p.read_text(encoding="utf-8"), str(p))
