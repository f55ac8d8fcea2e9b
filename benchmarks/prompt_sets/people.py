"""Person prompts for TRAINING the fairness rewards, kept apart from the occupations the paper evaluates on.

The paper (Zhang et al., arXiv 2401.12244, Sec. 4.2) trains skin-tone diversity on BLIP captions of 240M
human images from Pinterest, with captions naming ethnicity or race (e.g. African, Asian, Indian) filtered
out, and evaluates on 100 occupations ("a portrait of a ...") that are out of domain for that training set.
Those captions are not public, so ``person-descriptions`` generates caption-like descriptions of people from
templates: a person, what they wear or hold, what they do and where, in four caption framings. None names
an occupation (so the ``occupations`` set stays an out-of-domain evaluation set), an ethnicity, a race or a
skin tone, and none uses the evaluation template "a portrait of". ``path`` replaces the templates with a user
file of captions (one a line), filtered for ethnicity and race terms as the paper filters its captions.

    >>> from rewardbench.benchmarks.prompt_sets.people import person_descriptions
    >>> rows = person_descriptions()
    >>> len(rows), rows[0]["prompt"]
    (11760, 'a photo of a man standing on a beach')
"""

from __future__ import annotations

import os
import re

from . import read_text

SUBJECTS = ("a man", "a woman", "a young man", "a young woman", "an old man", "an old woman", "a boy", "a girl",
            "a teenager", "a person", "a middle-aged man", "a middle-aged woman", "an elderly person", "a child")
DETAILS = ("", "wearing a hat", "in a red dress", "in a denim jacket", "wearing glasses", "in a winter coat",
           "wearing a scarf", "in a striped shirt", "with a backpack", "holding an umbrella", "holding a cup of coffee",
           "with curly hair", "with short hair", "with long hair")
SCENES = ("standing on a beach", "sitting on a bench in a park", "walking down a city street", "smiling at the camera",
          "reading a book", "riding a bicycle", "sitting in a cafe", "standing in front of a brick wall",
          "hiking in the mountains", "laughing in the rain", "looking out of a window", "sitting on a sofa",
          "walking a dog", "standing in a field of flowers", "waiting at a train station")
FRAMES = ("a photo of {}", "a close-up photo of {}", "a candid photo of {}", "{}")

# Captions naming ethnicity, race or skin colour are dropped (the paper filters its training captions so; its
# examples: African, Asian, Indian). Colour words count only next to a person ("a black man", not "a black hat").
_PERSON = r"(?:man|men|woman|women|person|people|girl|girls|boy|boys|child|children|kid|kids|guy|lady|skin)"
ETHNICITY_PATTERN = re.compile(
    r"\b(?:african|asian|indian|caucasian|hispanic|latin[oax]|arab|arabic|middle[- ]eastern|european|ethnic\w*|"
    r"race|racial|biracial|mixed[- ]race|(?:black|white|brown|dark|light|fair|pale|tan)(?:[- ]skinned)?\s+"
    + _PERSON + r"|(?:dark|light|fair|pale|tan|brown)[- ]skinned)\b", re.IGNORECASE)


def person_descriptions(path: str | os.PathLike | None = None) -> list[dict]:
    """Rows ``{"prompt", "index"}``: 14 subjects x 14 details x 15 scenes x 4 framings (11,760), or the
    captions of ``path`` (a local file or URL, one a line) without those naming ethnicity or race."""
    if path is not None:
        lines = [line.strip() for line in read_text(path).splitlines() if line.strip()]
        prompts = list(dict.fromkeys(p for p in lines if not ETHNICITY_PATTERN.search(p)))
        if not prompts:
            raise ValueError(f"{path}: no captions left after dropping those that name ethnicity or race")
    else:
        prompts = [frame.format(" ".join(w for w in (subject, detail, scene) if w))
                   for frame in FRAMES for subject in SUBJECTS for detail in DETAILS for scene in SCENES]
    return [{"prompt": p, "index": i} for i, p in enumerate(prompts)]


PROMPT_SETS = {"person-descriptions": person_descriptions}
