"""OCR: Flow-GRPO's text-rendering reward, on PP-OCRv4 models bundled in ``rapidocr-onnxruntime`` (offline).

Flow-GRPO (Liu et al., arXiv 2505.05470) trains SD3.5 to render the text a prompt quotes. Its reward, as
``flow_grpo/ocr.py`` computes it (yifan123/flow_grpo@ac4c86e, `FLOW_GRPO_COMMIT`; the file last changed in
fc412d2):

1. the target is the text between the prompt's first two ASCII double quotes (``prompt.split('"')[1]``);
2. the OCR's lines are joined with nothing between them (lines with confidence 0 skipped; the OCR itself has
   dropped those below 0.5);
3. both strings lose their spaces (U+0020 only) and are lower-cased (``str.lower``);
4. the distance is 0 if the target is a substring of the recognised text, else the Levenshtein distance between
   the two (unit costs), capped at the target's length;
5. the reward is ``1 - distance / len(target)``, in [0, 1]; no text read gives 0.

Where Flow-GRPO would crash or guess, a row gets a clear error instead (`quoted_target`): a prompt without a pair
of ASCII double quotes (Flow-GRPO: ``IndexError``; an unclosed quote would make it read the rest of the prompt as
the target), and a quoted span that is empty once its spaces are removed (Flow-GRPO: ``ZeroDivisionError``).
Curly quotes do not count, as in Flow-GRPO; the error says so when a prompt has them. Flow-GRPO scores 0 when the
OCR raises; here the exception is the row's error.

The OCR is `rewardbench.rewards._rapidocr.TextReader`: PaddleOCR's pipeline at Flow-GRPO's settings (no angle
classifier, lines below 0.5 confidence dropped) on the Chinese-English PP-OCRv4 models of the wheel, where
Flow-GRPO's ``PaddleOCR(lang="en")`` downloads the English ones. Measured on a rendered-text set in
``scripts/ocr/results/rendered_text.md``.

Example:
    >>> import rewardbench
    >>> from rewardbench.rewards.ocr import ocr_reward
    >>> ocr_reward("OPEN 24 Hours", "open 24 hours")   # equal once spaces and case are gone
    (1.0, 0)
    >>> ocr_reward("Hell World", "Hello World")        # one character missing of 10
    (0.9, 1)
    >>> r = rewardbench.load_reward("ocr")
    >>> r.spec.needs_prompt, r.spec.range
    (True, (0.0, 1.0))
"""

from __future__ import annotations

import torch

from rewardbench import Option, RewardModel, RewardOutput, RewardSpec, WeightSource, register_reward
from rewardbench.images import uint8_view
from rewardbench.weights import Provenance, WeightsNotFoundError, bundled_path

from ._rapidocr import DET_MODEL, DET_SETTINGS, DROP_SCORE, REC_MODEL, TextReader
from ._runtime import onnx_device

FLOW_GRPO_COMMIT = "ac4c86e8cae021841f1fde853d340e0db67690dd"  # yifan123/flow_grpo, flow_grpo/ocr.py read there
QUOTE = '"'  # Flow-GRPO: prompt.split('"')[1]: the ASCII double quote only
_CURLY = "\u201c\u201d\u201e\u201f\u00ab\u00bb"  # “ ” „ ‟ « »: not quotes to Flow-GRPO
_WHEEL = "rapidocr-onnxruntime 1.4.4 (Apache-2.0)"
_DET = WeightSource("bundled", DET_MODEL, note=f"PP-OCRv4 text detector (DB), from {_WHEEL}")
_REC = WeightSource("bundled", REC_MODEL, note=f"PP-OCRv4 text recogniser (CTC, Chinese-English), from {_WHEEL}")
_OPTIONS = {
    "text_score": Option(float, DROP_SCORE, "the OCR drops lines read with a lower confidence (PaddleOCR's "
                         "drop_score, 0.5 as Flow-GRPO ran it)", low=0.0, high=1.0),
    "det_settings": Option(str, "paddleocr", "the text detector's settings: 'paddleocr' (PaddleOCR 2.9.1's, as "
                           "Flow-GRPO ran it) or 'rapidocr' (images enlarged to a shorter side of 736 px: small text "
                           "read better, at half the speed)", choices=tuple(DET_SETTINGS)),
    "target": Option(str, None, "one text to look for in every image instead of each prompt's quoted span",
                     optional=True),
}


def normalize(text: str) -> str:
    """Flow-GRPO's normalisation of both strings: spaces (U+0020 only) removed, ``str.lower``.

    Example:
        >>> normalize("Hello World")
        'helloworld'
    """
    return text.replace(" ", "").lower()


def quoted_target(prompt: str) -> str:
    """The text between the first two ASCII double quotes of ``prompt``, as written (Flow-GRPO's
    ``prompt.split('"')[1]``). Raises ``ValueError`` when there is no such pair, or when the span is empty once its
    spaces are removed (it would give a division by zero).

    Example:
        >>> quoted_target('a sign that says "OPEN" next to a "CLOSED" sign')
        'OPEN'
    """
    parts = prompt.split(QUOTE)
    if len(parts) < 3:
        found = "one unclosed double quote" if len(parts) == 2 else "no double-quoted text"
        curly = " (curly quotes are not read as quotes, as in Flow-GRPO: write \"...\")" if any(
            c in prompt for c in _CURLY) else ""
        raise ValueError(f"{found} in the prompt {prompt!r}{curly}: the ocr reward's target is the text between "
                         "the prompt's first two double quotes")
    if not normalize(parts[1]):
        raise ValueError(f"the quoted text of the prompt {prompt!r} is empty (spaces do not count): the ocr reward "
                         "has no target")
    return parts[1]


def join_texts(lines: list[tuple[str, float]]) -> str:
    """The OCR's lines as Flow-GRPO joins them: texts concatenated with nothing between, lines of confidence 0
    (or less) skipped (``''.join([res[1][0] if res[1][1] > 0 else '' for res in result[0]])``).

    Example:
        >>> join_texts([("OPEN", 0.99), ("24 HOURS", 0.97)])
        'OPEN24 HOURS'
    """
    return "".join(text if score > 0 else "" for text, score in lines)


def levenshtein(a: str, b: str) -> int:
    """Edit distance between ``a`` and ``b``: insertions, deletions and substitutions of one character, each 1
    (python-Levenshtein's ``distance``, which Flow-GRPO calls).

    Example:
        >>> levenshtein("kitten", "sitting")
        3
    """
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))  # distances from a[:0] to each prefix of b
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def ocr_reward(recognized: str, target: str) -> tuple[float, int]:
    """(reward, distance) of the recognised text against the target: Flow-GRPO's formula (module docstring).

    Example:
        >>> ocr_reward("WELCOME TO THE BAKERY", "Bakery")   # contained: distance 0
        (1.0, 0)
        >>> ocr_reward("", "Bakery")                        # nothing read: the cap, reward 0
        (0.0, 6)
    """
    rec, tgt = normalize(recognized), normalize(target)
    if not tgt:
        raise ValueError("the ocr reward's target text is empty (spaces do not count)")
    distance = 0 if tgt in rec else min(levenshtein(rec, tgt), len(tgt))
    return 1.0 - distance / len(tgt), distance


@register_reward()
class OCRReward(RewardModel):
    """Flow-GRPO's OCR reward: how closely the text read in the image matches the prompt's quoted text.

    ``text_score``: the OCR drops lines read with a lower confidence (PaddleOCR's ``drop_score``, 0.5, as
    Flow-GRPO ran it). ``det_settings``: the text detector's settings, ``"paddleocr"`` (PaddleOCR 2.9.1's
    defaults, as Flow-GRPO ran it) or ``"rapidocr"`` (RapidOCR's: images enlarged to a shorter side of 736 px;
    reads small text better, at half the speed; both measured in ``scripts/ocr/results/rendered_text.md``).
    ``target``: one text to look for in every image instead of each prompt's quoted span (prompts are then checked,
    not read): for prompt sets that do not quote their text, and the contract test's tiny config.

    Details per image: ``target`` (as the prompt writes it), ``recognized`` (the lines joined), ``distance`` (after
    the cap).
    """

    spec = RewardSpec(
        name="ocr", aliases=("flow-grpo-ocr", "text-rendering"), category="composition", higher_is_better=True,
        range=(0.0, 1.0), needs_prompt=True, weights=(_DET, _REC),
        license="Apache-2.0 (PP-OCRv4 models by PaddleOCR; RapidOCR)",
        paper="Liu et al., Flow-GRPO: Training Flow Matching Models via Online RL, arXiv 2505.05470 (the OCR "
              "reward); Du et al., PP-OCR: A Practical Ultra Lightweight OCR System, arXiv 2009.09941 (PP-OCRv4)",
        description="1 - Levenshtein distance / length between the prompt's quoted text and the text PP-OCRv4 "
                    "reads (0 if contained), Flow-GRPO's formula; bundled ONNX, offline",
        tiny_config={"target": "rewardbench"}, options=_OPTIONS,
    )
    accepts_ragged = True  # each image is read at its own size
    takes_uint8 = True  # the harness hands it the decoded bytes (rewardbench.engine.takes_uint8): no float pass

    def __init__(self, text_score: float = DROP_SCORE, det_settings: str = "paddleocr",
                 target: str | None = None) -> None:
        super().__init__()
        if target is not None and not normalize(target):
            raise ValueError("ocr: target= is empty (spaces do not count)")
        self.target = target
        self.reader = TextReader(text_score, det_settings)

    def provenance(self) -> list[Provenance]:
        # no random variant: the bundled models always run
        return [Provenance("bundled", w.location) for w in self.spec.weights]

    def load_pretrained(self, weights=None) -> list[Provenance]:
        missing = [str(bundled_path(w)) for w in self.spec.weights if not bundled_path(w).exists()]
        if missing:
            raise WeightsNotFoundError(f"reward 'ocr': bundled model not found: {', '.join(missing)} "
                                       "(pip install rapidocr-onnxruntime==1.4.4)")
        if weights is not None:
            raise ValueError("reward 'ocr' runs the PP-OCRv4 models bundled with rapidocr-onnxruntime; "
                             "weights= is not supported")
        return self.provenance()

    def forward(self, images, prompts=None, groups=None) -> RewardOutput:
        """As `rewardbench.RewardModel.forward`; a uint8 batch ``[B,3,H,W]`` is read as it is, with no float pass."""
        if isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.ndim == 4 \
                and images.shape[1] == 3 and images.shape[0]:
            prompt_list, group_t = self.check_inputs(prompts, groups, images.shape[0])
            return self.check_output(self.score(images, prompt_list, group_t), images.shape[0], group_t)
        return super().forward(images, prompts, groups)

    def read_text(self, pixels: torch.Tensor | list[torch.Tensor]) -> list[list[tuple[str, float]]]:
        """The OCR's (text, confidence) lines of each image: ``[B,3,H,W]`` floats in [0, 1] or uint8, or a list
        of ``[3,H,W]`` (the float pixels rounded to bytes as Flow-GRPO does: ``round(x * 255)``)."""
        arrays = [uint8_view(p[None])[0] for p in pixels] if isinstance(pixels, list) else list(uint8_view(pixels))
        with onnx_device(self.device):
            return self.reader.read_all(arrays)

    def score(self, pixels, prompts, groups) -> RewardOutput:
        # the targets first: a prompt without one fails the call before any OCR runs (the harness then scores
        # the other rows one by one and gives this row the error)
        targets = [self.target if self.target is not None else quoted_target(p) for p in prompts]
        recognized = [join_texts(lines) for lines in self.read_text(pixels)]
        scored = [ocr_reward(rec, tgt) for rec, tgt in zip(recognized, targets)]
        return RewardOutput(torch.tensor([s for s, _ in scored], dtype=torch.float32, device=self.device),
                            {"target": targets, "recognized": recognized,
                             "distance": torch.tensor([d for _, d in scored], dtype=torch.long)})
