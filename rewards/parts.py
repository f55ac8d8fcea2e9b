"""The building blocks of the zoo's rewards, public: face detectors, the people pipeline, skin tone, perceived
gender and NSFW detectors, the bundled BERT vocabulary, and the compositional rewards' prompt parser. The reward
modules use them from their private homes; code outside the zoo that measures or reuses a part (the fairness
measurements in ``scripts/fairness/``, the parity scripts, the GenEval prompt-parse measurement) imports it from
here, so a private module can change without breaking it.

Example (the default face detector on a real photo):
    >>> from rewardbench.samples import sample_photo
    >>> from rewardbench.rewards.parts import build_face_detector
    >>> import numpy as np
    >>> faces = build_face_detector("agreement").detect([np.asarray(sample_photo("astronaut"))])
    >>> len(faces[0])
    1
"""

from __future__ import annotations

from ._blazeface import facemesh_face_score
from ._blip import _packaged_vocab as bert_vocab_path
from ._centerface import centerface_detect
from ._faces import (
    PROFILE_EYE_RATIO,
    AgreementFaceDetector,
    BlazeFaceDetector,
    Face,
    FaceDetector,
    agree,
    build_face_detector,
    centerface_face,
)
from ._gender import AgeGenderClassifier
from ._nudenet import nudenet_detect
from ._opennsfw import OPEN_NSFW_THRESHOLD, open_nsfw_scores
from ._people import PeoplePipeline
from ._prompts import ParsedPrompt, parse_prompt
from ._skin_tone import SKIN_BUCKETS, colourfulness, face_skin_tone
from ._vocab import GENEVAL_NAMES

__all__ = [
    "Face", "FaceDetector", "AgreementFaceDetector", "BlazeFaceDetector", "build_face_detector", "agree",
    "centerface_face", "centerface_detect", "facemesh_face_score", "PROFILE_EYE_RATIO", "PeoplePipeline",
    "SKIN_BUCKETS", "colourfulness", "face_skin_tone", "AgeGenderClassifier", "nudenet_detect",
    "OPEN_NSFW_THRESHOLD", "open_nsfw_scores", "bert_vocab_path", "parse_prompt", "ParsedPrompt", "GENEVAL_NAMES",
]
