"""Prompts longer than a prompted reward's token limit are scored cut: each such row says how many tokens
the model kept (CLIP family: 77 CLIP BPE tokens; ImageReward: 35 BERT WordPiece tokens), on the real
vocabularies and tiny random models."""

from __future__ import annotations

import pytest
import torch

import rewardbench
from rewardbench.text import clip_tokenizer, token_count

LONG = "a photograph of " + "a very tall and very old lighthouse on a rocky coast, " * 8 + "at dusk"
LIMITS = {"clipscore-b32": 77, "pickscore": 77, "hpsv2": 77, "imagereward": 35}


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_a_cut_prompt_gets_a_note_with_the_tokens_kept(name):
    torch.manual_seed(0)
    reward = rewardbench.load_reward(name, pretrained=False, **rewardbench.get_spec(name).tiny_config)
    out = reward(torch.rand(2, 3, 64, 64), ["a lighthouse", LONG])
    notes = out.details["prompt_note"]
    limit = LIMITS[name]
    assert notes[0] == ""
    assert notes[1].startswith(f"prompt cut to the model limit: {limit} of its ") and notes[1].endswith("tokens kept")
    n = int(notes[1].split(" of its ")[1].split()[0])
    assert n > limit
    if limit == 77:  # the CLIP BPE count of the text the model reads (CLIPScore's prefix included), with start/end
        assert n == token_count(clip_tokenizer(), getattr(reward, "prompt_prefix", "") + LONG)


def test_the_note_reaches_the_results_table():
    from rewardbench.harness import Scorer

    torch.manual_seed(0)
    reward = rewardbench.load_reward("clipscore-b32", pretrained=False, tiny=True)
    items = [{"image": torch.rand(3, 32, 32), "prompt": p} for p in ("a lighthouse", LONG)]
    t = Scorer({"clipscore-b32": reward}, num_workers=0, progress=False).run(items).table
    assert t["clipscore-b32.prompt_note"].tolist()[0] == ""
    assert "77 of its" in t["clipscore-b32.prompt_note"].tolist()[1]
