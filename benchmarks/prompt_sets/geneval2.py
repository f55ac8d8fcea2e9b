"""GenEval 2 prompt set (Kamath et al. 2025, arXiv 2512.16853): 800 prompts, each with its per-atom questions,
their skills and its atom count (`rewardbench.geneval2`; the ``soft-tifa`` judge asks the questions).

Source: ``path`` (a local ``geneval2_data.jsonl`` or any URL), else the official file on GitHub
(facebookresearch/GenEval2). The data is CC BY-NC 4.0 (Meta Platforms) and is not shipped with rewardbench.
Each prompt's category is its atom count (``"3 atoms"`` ... ``"10 atoms"``), the rows of GenEval 2's
per-atomicity analysis; ``atom_count=`` keeps one.
"""

from __future__ import annotations

import os

from rewardbench.geneval2 import GenEval2DataError, read_geneval2

from . import PromptSourceError


def load_geneval2(path: str | os.PathLike | None = None, atom_count: int | None = None) -> list[dict]:
    try:
        items = read_geneval2(path)
    except GenEval2DataError as e:
        raise PromptSourceError(str(e)) from None
    return [{"prompt": it.prompt, "category": f"{it.atom_count} atoms", "atom_count": it.atom_count,
             "skills": list(it.skills), "questions": [q for q, _ in it.vqa]}
            for it in items if atom_count is None or it.atom_count == atom_count]


PROMPT_SETS = {"geneval2": load_geneval2}
