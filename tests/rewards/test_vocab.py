"""The parser's word tables (rewards/_vocab.py): consistent with COCO and with each other."""

from __future__ import annotations

from rewardbench.coco import COCO_CLASSES
from rewardbench.rewards._vocab import (
    COLORS,
    GENEVAL_COLORS,
    GENEVAL_NAMES,
    GENEVAL_POSITIONS,
    NUMBER_WORDS,
    RELATIONS,
    SPATIAL_RELATIONS,
    SYNONYMS,
)


def test_every_synonym_names_a_coco_class():
    assert set(SYNONYMS.values()) <= set(COCO_CLASSES)
    assert all(SYNONYMS[c] == c for c in COCO_CLASSES)
    assert all(SYNONYMS[k] == v for k, v in GENEVAL_NAMES.items())


def test_relations_map_to_the_canonical_ones():
    assert set(RELATIONS.values()) == set(SPATIAL_RELATIONS)
    assert GENEVAL_POSITIONS == ("left of", "right of", "above", "below")
    assert set(GENEVAL_COLORS) <= COLORS and len(GENEVAL_COLORS) == 10


def test_number_words():
    assert NUMBER_WORDS["a"] == NUMBER_WORDS["an"] == NUMBER_WORDS["single"] == 1
    assert [NUMBER_WORDS[w] for w in ("two", "pair", "couple", "twelve")] == [2, 2, 2, 12]
