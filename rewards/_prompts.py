"""Rule-based prompt parsing for the compositional rewards: objects, attributes, counts, relations.

No downloaded NLP model is needed (spaCy's English models are not on the package registry): the
parser works on the word tables of `rewards._vocab` — the 80 COCO classes with plurals and synonyms,
colours, shapes, textures, number words — and the spatial phrases of T2I-CompBench and GenEval.
`ParsedPrompt.geneval_spec` writes a parsed prompt as GenEval's ``include``/``exclude`` metadata.

    >>> p = parse_prompt("two dogs on the left of a red car")
    >>> [(o.noun, o.coco, o.count, o.color) for o in p.objects]
    [('dogs', 'dog', 2, None), ('car', 'car', 1, 'red')]
    >>> [(r.subject, r.relation, r.object) for r in p.relations]
    [(0, 'left of', 1)]

How it reads a prompt (the rules, in order):
  1. lower-case, tokenise into words (hyphenated words stay whole) and punctuation; drop a leading
     frame such as "a photo of" / "an image of";
  2. find relation phrases, longest first ("on the left of" before "left of");
  3. cut the text into chunks at punctuation, conjunctions ("and", "with", "while", ...),
     prepositions, auxiliary verbs and relation phrases;
  4. in each chunk: determiners and number words give the count ("a" / "one" -> 1, "three" -> 3,
     a plural with no number -> None), colour/shape/texture words are attributes, and the rest up
     to the first verb-like word (-ing/-ed after the noun started) is the noun (compounds such as
     "coat rack" stay whole); an attribute word that ends the chunk and is also an object
     ("an orange") is the noun;
  5. the noun is singularised and mapped to a COCO class through the synonym table (longest
     matching tail first: "wine glass" before "glass"); no match -> ``coco=None`` (the detector
     does not know it, and the rewards say so);
  6. a relation links the last object before it (subject) to the first object after it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from ._vocab import (
    COLORS,
    CONJUNCTIONS,
    DETERMINERS,
    FRAMES,
    GENEVAL_COLORS,
    GENEVAL_POSITIONS,
    IRREGULAR_PLURALS,
    NUMBER_WORDS,
    OTHER_ADJECTIVES,
    PREPOSITIONS,
    RELATIONS,
    SHAPES,
    SYNONYMS,
    TEXTURES,
    VERBS,
)

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[,.;:!?()\"]")


def singular(word: str) -> str:
    """Singular of an English noun or compound (the last word changes): ``singular("wine glasses")``
    is ``"wine glass"``. Rules plus a table of irregular and invariant words.

        >>> singular("buses"), singular("mice"), singular("strawberries"), singular("sheep")
        ('bus', 'mouse', 'strawberry', 'sheep')
    """
    head, _, last = word.rpartition(" ")
    w = last
    if w in IRREGULAR_PLURALS:
        s = IRREGULAR_PLURALS[w]
    elif w.endswith("s") and w[:-1] in SYNONYMS:  # "broccolis", "ties", "skateboards"
        s = w[:-1]
    elif len(w) > 4 and w.endswith("ies"):
        s = w[:-3] + "y"
    elif w.endswith(("sses", "shes", "ches", "xes", "zes", "uses")):
        s = w[:-2]
    elif w.endswith("oes") and len(w) > 4:
        s = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 2:
        s = w[:-1]
    else:
        s = w
    return f"{head} {s}" if head else s


@dataclass(frozen=True)
class ObjectMention:
    """One noun phrase: ``phrase`` as written (determiner included, as spaCy's noun chunks are),
    ``noun`` its noun, ``coco`` the COCO class (None: unknown to a COCO detector), ``count`` (None
    for a plural without a number), and its attributes."""

    phrase: str
    noun: str
    lemma: str
    coco: str | None
    count: int | None
    color: str | None = None
    shape: str | None = None
    texture: str | None = None
    explicit_count: bool = False  # a number word other than "a"/"an" was written
    det: str = ""  # determiners / number words before the phrase ("a", "two", "the")
    start: int = 0  # token span in the prompt
    end: int = 0


@dataclass(frozen=True)
class Relation:
    subject: int  # index into ParsedPrompt.objects
    relation: str  # canonical: one of SPATIAL_RELATIONS
    object: int
    phrase: str  # as written, e.g. "on the left of"


@dataclass(frozen=True)
class ParsedPrompt:
    text: str
    objects: tuple[ObjectMention, ...] = ()
    relations: tuple[Relation, ...] = ()
    relation_phrases: tuple[str, ...] = field(default=())  # every relation phrase found, linked or not

    @property
    def known(self) -> tuple[ObjectMention, ...]:
        """Objects a COCO detector can see."""
        return tuple(o for o in self.objects if o.coco is not None)

    @property
    def unknown(self) -> tuple[str, ...]:
        return tuple(o.noun for o in self.objects if o.coco is None)

    def note(self) -> str:
        """A per-row note for objects the detector does not know ("" when there are none)."""
        if not self.objects:
            return "no object found in the prompt"
        if self.unknown:
            return ("not in the detector's vocabulary (COCO classes), scored as not detected: "
                    + ", ".join(self.unknown))
        return ""

    def geneval_spec(self) -> dict:
        """The prompt as GenEval's ``include``/``exclude`` metadata (classes are COCO names):
        ``include`` lists each known object with its count, colour and position relative to an
        earlier ``include`` entry; ``exclude`` forbids count + 1 for explicitly numbered objects, as
        GenEval's counting prompts do (djghosh13/geneval prompts/create_prompts.py)."""
        objs = list(self.objects)
        order = list(range(len(objs)))
        # GenEval lists the reference object first and gives the subject a position relative to it
        for r in self.relations:
            if r.relation in GENEVAL_POSITIONS and order.index(r.object) > order.index(r.subject):
                order.remove(r.object)
                order.insert(order.index(r.subject), r.object)
        known = [i for i in order if objs[i].coco is not None]
        include, exclude = [], []
        for i in known:
            o = objs[i]
            item: dict = {"class": o.coco, "count": o.count or 1}
            if o.color in GENEVAL_COLORS:
                item["color"] = o.color
            for r in self.relations:
                if r.subject == i and r.relation in GENEVAL_POSITIONS and r.object in known:
                    item["position"] = [r.relation, known.index(r.object)]
            include.append(item)
            if o.explicit_count and (o.count or 1) >= 2:
                exclude.append({"class": o.coco, "count": (o.count or 1) + 1})
        spec: dict = {"include": include}
        if exclude:
            spec["exclude"] = exclude
        return spec


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text.lower().replace("’", "'"))


@functools.cache
def _relation_table() -> list[tuple[tuple[str, ...], str]]:
    return sorted(((tuple(k.split()), v) for k, v in RELATIONS.items()), key=lambda kv: -len(kv[0]))


def coco_class(noun: str) -> str | None:
    """COCO class of a noun (singular or plural, compound allowed): longest matching tail first.

        >>> coco_class("wine glasses"), coco_class("puppies"), coco_class("lamp")
        ('wine glass', 'dog', None)
    """
    words = noun.lower().split()
    for k in range(len(words)):
        tail = " ".join(words[k:])
        for cand in (tail, singular(tail)):
            if cand in SYNONYMS:
                return SYNONYMS[cand]
    return None


def _is_verbish(tok: str) -> bool:
    return tok in VERBS or (len(tok) > 4 and tok.endswith(("ing", "ed")) and tok not in COLORS | SHAPES | TEXTURES)


def _parse_tail(toks: list[str], j: int) -> list[str]:
    """Noun words after a recognised compound, up to the first verb-like word."""
    out = []
    for t in toks[j:]:
        if _is_verbish(t):
            break
        out.append(t)
    return out


def _parse_chunk(toks: list[str], start: int) -> ObjectMention | None:
    count: int | None = None
    explicit = False
    attrs: dict[str, str] = {}
    attr_pos: dict[str, int] = {}
    noun: list[str] = []
    i = 0
    det: list[str] = []
    while i < len(toks) and (toks[i] in NUMBER_WORDS or toks[i] in DETERMINERS or toks[i].isdigit()):
        t = toks[i]
        det.append(t)
        if t.isdigit():
            count, explicit = int(t), True
        elif t in NUMBER_WORDS and not (t == "couple" and i + 1 < len(toks) and toks[i + 1] != "of"):
            count = NUMBER_WORDS[t]
            explicit = explicit or t not in ("a", "an")
        i += 1
        if i < len(toks) and toks[i] == "of" and t in ("pair", "couple"):
            i += 1
    end = i
    for j in range(i, len(toks)):
        t = toks[j]
        if noun and _is_verbish(t):
            break
        if not noun and t in VERBS:
            break
        if not noun:  # a known compound object ("hot dog", "wine glass") is a noun, not attribute + noun
            compound = next((k for k in (3, 2) if j + k <= len(toks)
                             and singular(" ".join(toks[j:j + k])) in SYNONYMS), 0)
            if compound:
                noun.extend(toks[j:j + compound])
                end = j + compound
                break_at = j + compound
                rest = _parse_tail(toks, break_at)
                noun.extend(rest)
                end += len(rest)
                break
        is_attr = t in COLORS or t in SHAPES or t in TEXTURES or t in OTHER_ADJECTIVES
        if is_attr and not noun:
            kind = "color" if t in COLORS else "shape" if t in SHAPES else "texture" if t in TEXTURES else None
            if kind and kind not in attrs:
                attrs[kind] = t
                attr_pos[kind] = j
            end = j + 1
            continue
        if t in NUMBER_WORDS and not noun:
            count, explicit = NUMBER_WORDS[t], t not in ("a", "an")
            end = j + 1
            continue
        noun.append(t)
        end = j + 1
    if not noun:
        # an attribute word that ends the chunk and names an object: "an orange", "a glass"
        last = toks[end - 1] if end > 0 else None
        if last and last not in NUMBER_WORDS and last not in DETERMINERS:
            noun = [last]
            for k, pos in list(attr_pos.items()):
                if pos == end - 1:
                    del attrs[k]
        else:
            return None
    noun_s = " ".join(noun)
    lemma = singular(noun_s)
    plural = lemma != noun_s and noun[-1] not in ("skis", "scissors", "glasses")
    if count is None:
        count = None if plural else 1
    phrase = " ".join(toks[:end])
    return ObjectMention(phrase=phrase, noun=noun_s, lemma=lemma, coco=coco_class(noun_s), count=count,
                         color=attrs.get("color"), shape=attrs.get("shape"), texture=attrs.get("texture"),
                         explicit_count=explicit, det=" ".join(det), start=start, end=start + end)


@functools.lru_cache(maxsize=65536)
def parse_prompt(text: str) -> ParsedPrompt:
    """Parse a prompt into objects (with count and attributes) and spatial relations. Never raises;
    an unparseable prompt gives a `ParsedPrompt` with no objects. See the module docstring."""
    toks = _tokens(text)
    # 1. a leading frame ("a photo of") is not an object
    for frame in FRAMES:
        f = frame.split()
        if toks[: len(f)] == f:
            toks = toks[len(f):]
            offset = len(f)
            break
    else:
        offset = 0
    # 2. relation phrases, longest first, left to right
    rel_at: dict[int, tuple[int, str, str]] = {}  # start -> (length, canonical, phrase)
    i = 0
    while i < len(toks):
        for phr, canon in _relation_table():
            if tuple(toks[i:i + len(phr)]) == phr:
                rel_at[i] = (len(phr), canon, " ".join(phr))
                i += len(phr) - 1
                break
        i += 1
    # 3. chunks between separators
    chunks: list[tuple[int, list[str]]] = []
    cur: list[str] = []
    cur_start = 0
    i = 0
    order: list[tuple[str, object]] = []  # sequence of ("chunk", idx) / ("rel", (canon, phrase))

    def flush(at: int) -> None:
        nonlocal cur, cur_start
        if cur:
            chunks.append((cur_start, cur))
            order.append(("chunk", len(chunks) - 1))
        cur = []
        cur_start = at

    while i < len(toks):
        t = toks[i]
        if i in rel_at:
            n, canon, phrase = rel_at[i]
            flush(i + n)
            order.append(("rel", (canon, phrase)))
            i += n
            continue
        if (not t[0].isalnum()) or t in CONJUNCTIONS or t in PREPOSITIONS or (t in VERBS and t not in NUMBER_WORDS):
            flush(i + 1)
            i += 1
            continue
        if not cur:
            cur_start = i
        cur.append(t)
        i += 1
    flush(len(toks))
    # 4./5. objects
    objects: list[ObjectMention] = []
    chunk_obj: dict[int, int] = {}
    for ci, (s, ctoks) in enumerate(chunks):
        m = _parse_chunk(ctoks, s + offset)
        if m is not None:
            chunk_obj[ci] = len(objects)
            objects.append(m)
    # 6. relations: last object before -> first object after
    relations: list[Relation] = []
    phrases: list[str] = []
    for k, (kind, val) in enumerate(order):
        if kind != "rel":
            continue
        canon, phrase = val  # type: ignore[misc]
        phrases.append(phrase)
        before = [chunk_obj[v] for kd, v in order[:k] if kd == "chunk" and v in chunk_obj]  # type: ignore[operator]
        after = [chunk_obj[v] for kd, v in order[k + 1:] if kd == "chunk" and v in chunk_obj]  # type: ignore[operator]
        if before and after:
            relations.append(Relation(before[-1], canon, after[0], phrase))
    return ParsedPrompt(text=text, objects=tuple(objects), relations=tuple(relations), relation_phrases=tuple(phrases))
