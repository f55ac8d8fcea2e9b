"""Flow-GRPO's held-out prompts (Liu et al., arXiv 2505.05470; yifan123/flow_grpo, MIT): ``flow-grpo-ocr``, the
1,018 prompts of its ``dataset/ocr/test.txt``, each quoting the text an image should render (the ``ocr`` reward reads
the quoted span), and ``flow-grpo-pickscore``, the 2,048 prompts of its ``dataset/pickscore/test.txt`` (all distinct;
checked on the file at ac4c86e). Each ``train.txt`` is the training split, read by a recipe's task as a plain prompt
file (trainers/recipes/flow_grpo_ocr_sd35m.yaml, flow_grpo_pickscore_sd35m.yaml); being registered here makes the
``test.txt`` files held-out sets, so the trainer checks (or, with ``drop_eval_overlap``, leaves out) any training
prompt that is one of these.

Sources: ``path`` (a local copy of the ``test.txt``, one prompt a line, or any URL), else the file on GitHub.
Flow-GRPO's GenEval test prompts (``dataset/geneval/test_metadata.jsonl``) are GenEval's own 553 prompts, each four
times with the same metadata: the ``geneval`` prompt set reads that file too.
"""

from __future__ import annotations

import os

from . import read_text

OCR_TEST_URL = "https://raw.githubusercontent.com/yifan123/flow_grpo/main/dataset/ocr/test.txt"
PICKSCORE_TEST_URL = "https://raw.githubusercontent.com/yifan123/flow_grpo/main/dataset/pickscore/test.txt"


def _lines(source: str | os.PathLike) -> list[dict]:
    lines = read_text(source).splitlines()
    return [{"prompt": p, "index": i} for i, p in enumerate(line.strip() for line in lines if line.strip())]


def load_flow_grpo_ocr(path: str | os.PathLike | None = None) -> list[dict]:
    """Rows ``{"prompt", "index"}`` of the OCR test prompts in the file's order (blank lines skipped)."""
    return _lines(path if path is not None else OCR_TEST_URL)


def load_flow_grpo_pickscore(path: str | os.PathLike | None = None) -> list[dict]:
    """Rows ``{"prompt", "index"}`` of the PickScore test prompts in the file's order (blank lines skipped)."""
    return _lines(path if path is not None else PICKSCORE_TEST_URL)


PROMPT_SETS = {"flow-grpo-ocr": load_flow_grpo_ocr, "flow-grpo-pickscore": load_flow_grpo_pickscore}
