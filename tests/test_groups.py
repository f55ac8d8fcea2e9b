"""Groups: keys from any column(s), the per-group table (group details, one note per group), statistics over
groups."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from rewardbench.groups import group_key, group_note, group_table, parse_group_by, score_stats
from rewardbench.spec import RewardSpec


def test_group_by_parsing_and_keys():
    assert parse_group_by("prompt,model") == ("prompt", "model") == parse_group_by(["prompt", "model"])
    assert parse_group_by("") is None and parse_group_by(None) is None
    with pytest.raises(ValueError, match="twice"):
        parse_group_by("prompt,prompt")
    row = {"prompt": "a nurse", "group": None, "extra": {"model": "sd2.1", "seed": 0}}
    assert group_key(row, ("prompt",)) == ("a nurse",)
    assert group_key(row, ("model", "seed")) == ("sd2.1", 0)
    assert group_key({**row, "prompt": "  "}, ("prompt", "model")) is None  # an empty value: no group
    assert group_key({**row, "extra": {"model": float("nan")}}, ("model",)) is None
    assert group_key(row, None) is None


def _rows():
    # two models x one prompt, plus a row with no model (no group); a group reward "parity" with group-wide
    # details (people measured, shares, a note on one member) and a per-image detail (faces per image)
    return pd.DataFrame({
        "image": [f"{i}.png" for i in range(6)],
        "prompt": ["a nurse"] * 6,
        "model": ["sd1.5", "sd1.5", "sd1.5", "sd2.1", "sd2.1", None],
        "jpeg": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "parity": [-0.5, -0.5, -0.5, -0.25, np.nan, np.nan],
        "parity.n_faces": [1.0, 0.0, 2.0, 1.0, np.nan, np.nan],
        "parity.group_people": [3.0, 3.0, 3.0, 1.0, np.nan, np.nan],
        "parity.group_shares": [json.dumps([1, 0])] * 3 + [json.dumps([0.5, 0.5]), None, None],
        "parity.group_note": ["1 of 3 images without a face", None, "1 of 3 images without a face", "", None, None],
        "vendi": [1.5, 1.5, 1.5, 1.0, 1.0, np.nan],
        "vendi.group_note": ["", "", "", "a single image", "a single image", None],
        "error": [None, None, None, None, "4.png: cannot decode", "parity: no group"],
    })


def test_group_table_one_row_per_group_with_group_wide_details():
    g = group_table(_rows(), ("prompt", "model"), ["parity"])
    assert g[["prompt", "model"]].values.tolist() == [["a nurse", "sd1.5"], ["a nurse", "sd2.1"]]
    assert g["size"].tolist() == [3, 2] and g["failed"].tolist() == [0, 1]
    assert g["parity"].tolist() == [-0.5, -0.25]
    assert g["parity.images"].tolist() == [3, 1]  # members the reward scored
    assert g["parity.group_people"].tolist() == [3.0, 1.0]
    assert g["parity.group_shares"].tolist() == ["[1, 0]", "[0.5, 0.5]"]
    assert "parity.n_faces" not in g.columns  # a per-image detail, in the row table only
    assert "jpeg" not in g.columns and "parity.group_note" not in g.columns


def test_a_group_has_one_note_naming_its_rewards_unless_every_one_gives_it():
    rows = _rows()
    g = group_table(rows, ("prompt", "model"), ["parity", "vendi"])
    # sd1.5: parity alone has a note, so it is named; sd2.1: vendi alone
    assert g["note"].tolist() == ["parity: 1 of 3 images without a face", "vendi: a single image"]
    rows.loc[3, "parity.group_note"] = "no face found"  # sd2.1: two rewards with two different notes
    assert group_table(rows, ("prompt", "model"), ["parity", "vendi"])["note"].tolist()[1] == \
        "parity: no face found; vendi: a single image"
    rows["vendi.group_note"] = rows["parity.group_note"]  # the same note from both: said once, nobody named
    assert group_table(rows, ("prompt", "model"), ["parity", "vendi"])["note"].tolist() == [
        "1 of 3 images without a face", "no face found"]


def _spec(name, category, least=2):
    return RewardSpec(name=name, category=category, granularity="group", min_group_size=least)


FAMILY = {n: _spec(n, c) for n, c in (("gender-kl", "fairness"), ("gender-parity", "fairness"),
                                       ("skin-tone-kl", "fairness"), ("skin-tone-parity", "fairness"),
                                       ("vendi", "diversity"), ("pairwise-cosine-distance", "diversity"))}


def test_a_reason_shared_by_a_family_is_said_once_for_the_family():
    names = list(FAMILY)
    facts = {n: ("no face found in its image", True, 1) for n in names[:4]}
    facts.update({n: ("a single image", True, 1) for n in names[4:]})
    assert group_note(facts, names, FAMILY) == (
        "every group reward: too small (1 image; at least 2 needed); fairness rewards: no face found in its image; "
        "diversity rewards: a single image")
    # the skin-tone rewards alone lack faces: named by their stem; a lone reward by its name
    facts = {n: ("", False, 3) for n in names}
    facts["skin-tone-kl"] = facts["skin-tone-parity"] = ("1 of 3 images without a measured face", False, 3)
    facts["vendi"] = ("q=2", False, 3)
    assert group_note(facts, names, FAMILY) == "skin-tone-*: 1 of 3 images without a measured face; vendi: q=2"
    # without specs: no family, and the size alone
    facts = {n: ("", True, 1) for n in names}
    assert group_note(facts, names) == "too small (1 image)"


def test_the_group_table_says_why_a_group_is_too_small_from_the_flag_and_the_specs():
    rows = _rows()
    rows["vendi.group_too_small"] = [False, False, False, True, True, None]
    rows["parity.group_too_small"] = [False, False, False, True, None, None]
    specs = {"parity": _spec("parity", "fairness"), "vendi": _spec("vendi", "diversity", least=3)}
    g = group_table(rows, ("prompt", "model"), ["parity", "vendi"], specs)
    assert g["note"].tolist() == [
        "parity: 1 of 3 images without a face",
        # sd2.1: parity scored 1 image (the other failed), vendi 2 (its value has both)
        "parity: too small (1 image; at least 2 needed); vendi: too small (2 images; at least 3 needed); "
        "vendi: a single image"]


def test_the_group_table_is_built_at_once_with_its_flags_as_booleans():
    """Many group rewards with many details: no PerformanceWarning (columns inserted one by one fragment a frame)."""
    rows = _rows().drop(columns=["parity.group_note", "vendi.group_note"])
    names = [f"r{i}" for i in range(30)]
    extra = {}
    for n in names:
        extra[n] = rows["parity"]
        for k in ("people", "faces_found", "shares"):
            extra[f"{n}.group_{k}"] = rows[f"parity.group_{k}" if k != "faces_found" else "parity.group_people"]
        extra[f"{n}.group_too_small"] = pd.array([False, False, False, True, pd.NA, pd.NA], dtype="boolean")
    rows = pd.concat([rows, pd.DataFrame(extra)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = group_table(rows, ("prompt", "model"), names)
    assert len(g.columns) == 2 + 2 + 30 * 6 + 1
    assert str(g["r0.group_too_small"].dtype) == "boolean" and g["r0.group_too_small"].tolist() == [False, True]
    assert g["note"].tolist() == ["", "too small (1 image)"]  # every reward gives the one reason: said plainly


def test_summary_counts_each_group_once():
    rows = _rows()
    g = group_table(rows, ("prompt", "model"), ["parity"])
    stats = score_stats(rows, g, ["jpeg", "parity"], {"jpeg": "image", "parity": "group"})
    assert stats["parity"] == {"over": "groups", "n": 2, "of": 2, "mean": -0.375, "std": 0.125, "min": -0.5,
                               "max": -0.25}
    # per row it would be (3 * -0.5 - 0.25) / 4: the big group would count three times
    assert stats["jpeg"]["over"] == "rows" and stats["jpeg"]["mean"] == pytest.approx(3.5) and stats["jpeg"]["n"] == 6
    empty = score_stats(rows.assign(jpeg=np.nan), g, ["jpeg"], {"jpeg": "image"})["jpeg"]
    assert empty["n"] == 0 and empty["mean"] is None
