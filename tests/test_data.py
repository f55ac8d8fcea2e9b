"""Input sources: folders with prompts files, JSONL/CSV/parquet manifests, lists; streaming."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from rewardbench.data import FolderSource, ListSource, ManifestSource, SourceError, open_source


def test_folder_rows_are_sorted_and_paired_with_prompts(photo_dir):
    src = open_source(photo_dir, photo_dir / "prompts.txt")
    rows = list(src.iter_rows())
    assert isinstance(src, FolderSource) and len(src) == 5 == len(rows)
    names = [r["image"].rsplit("/", 1)[-1] for r in rows]
    assert names == sorted(names)
    assert [r["index"] for r in rows] == list(range(5))
    assert rows[names.index("chelsea.jpg")]["prompt"] == "a photo of a cat"


def test_folder_single_prompt_line_applies_to_all(photo_dir, tmp_path):
    p = tmp_path / "one.txt"
    p.write_text("a photo\n")
    assert {r["prompt"] for r in open_source(photo_dir, p).iter_rows()} == {"a photo"}


def test_folder_prompt_count_mismatch(photo_dir, tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("a\nb\nc\n")
    with pytest.raises(SourceError, match="3 prompts for 5 images"):
        open_source(photo_dir, p)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(SourceError, match="no image files"):
        open_source(tmp_path)
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(tmp_path / "nope")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_manifest_formats_resolve_relative_paths(tmp_path, fmt):
    (tmp_path / "sub").mkdir()
    df = pd.DataFrame({"image": ["sub/a.png", "/abs/b.png", "c.png"], "prompt": ["1", "", "a cat"],
                       "group": ["g1", "g1", "g2"]})
    path = tmp_path / f"m.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in df.to_dict("records")) + "\n")
    elif fmt == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path)
    src = open_source(path)
    assert isinstance(src, ManifestSource) and src.has_groups and len(src) == 3
    rows = list(src.iter_rows())
    assert rows[0]["image"] == str(tmp_path.resolve() / "sub" / "a.png")
    assert rows[1]["image"] == "/abs/b.png"
    assert [r["prompt"] for r in rows] == ["1", "", "a cat"]  # "1" stays a string; empty stays empty
    assert [r["group"] for r in rows] == ["g1", "g1", "g2"]


def test_manifest_without_image_column_names_the_fix(tmp_path):
    path = tmp_path / "m.csv"
    pd.DataFrame({"path": ["a.png"], "prompt": ["x"]}).to_csv(path, index=False)
    with pytest.raises(SourceError, match="rename it to 'image'"):
        open_source(path)


def test_bad_jsonl_line_names_the_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"image": "a.png"}\n{oops\n')
    with pytest.raises(SourceError, match=r"m.jsonl:2"):
        list(open_source(path).iter_rows())


def test_prompts_file_with_manifest_is_refused(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"image": "a.png"}\n')
    with pytest.raises(SourceError, match="own 'prompt' column"):
        open_source(path, prompts=tmp_path / "p.txt")


def test_list_source_validates_items():
    src = open_source([{"image": np.zeros((4, 4, 3), np.uint8), "prompt": "x", "group": 3}])
    assert isinstance(src, ListSource) and src.in_memory and src.has_groups
    with pytest.raises(SourceError, match=r"items\[1\]"):
        open_source([{"image": "a.png"}, {"prompt": "no image"}])


def _write_manifest(df: pd.DataFrame, path):
    """``df`` as a JSONL, CSV or parquet manifest, by the extension of ``path``."""
    if path.suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    elif path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, row_group_size=4096)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_manifest_streams_in_chunks(tmp_path, fmt):
    n = 20_000
    df = pd.DataFrame({"image": [f"img_{i % 97}.png" for i in range(n)],
                       "prompt": [f"prompt number {i} " * 4 for i in range(n)]})
    path = _write_manifest(df, tmp_path / f"big.{fmt}")
    del df
    src = open_source(path)
    assert len(src) == n

    tracemalloc.start()
    seen, biggest = 0, 0
    for chunk in src.iter_chunks(1000):
        biggest = max(biggest, len(chunk))
        assert chunk[0]["index"] == seen
        seen += len(chunk)
    _, streaming_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seen == n and biggest <= 1000

    tracemalloc.start()
    everything = list(src.iter_rows(chunk_rows=n))
    _, all_at_once_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(everything) == n
    # holding 1000 rows at a time needs a fraction of what holding all 50k does
    assert streaming_peak < all_at_once_peak / 4


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_manifest_columns_pass_through_with_paths_as_written(tmp_path, fmt):
    df = pd.DataFrame({"image": ["sub/a.png", "b.png"], "prompt": ["a nurse", "a nurse"], "model": ["sd1.5", "sd2.1"],
                       "prompt_id": [7, 7], "seed": [0, 1], "score_hint": [0.5, None]})
    src = open_source(_write_manifest(df, tmp_path / f"m.{fmt}"))
    assert src.extra_columns == ["model", "prompt_id", "seed", "score_hint"] and src.has_prompts
    rows = list(src.iter_rows())
    assert [r["label"] for r in rows] == ["sub/a.png", "b.png"]  # relative stays relative
    assert rows[0]["image"] == str(tmp_path.resolve() / "sub" / "a.png")  # but is read from the right place
    assert [r["extra"]["model"] for r in rows] == ["sd1.5", "sd2.1"]
    assert [r["extra"]["seed"] for r in rows] == [0, 1] and rows[1]["extra"]["score_hint"] is None
    assert rows[0]["extra"]["prompt_id"] == 7


def test_csv_pass_through_types_follow_the_whole_column(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("image,prompt,seed,tag\na.png,1,3,x\nb.png,2,,7\nc.png,3,5,\n")
    rows = list(ManifestSource(path).iter_chunks(chunk_rows=1))  # one row per chunk: typing is not per chunk
    rows = [r for chunk in rows for r in chunk]
    expected = pd.read_csv(path)
    assert [r["prompt"] for r in rows] == ["1", "2", "3"]  # prompts stay text
    assert [r["extra"]["seed"] for r in rows][::2] == list(expected["seed"][::2]) and rows[1]["extra"]["seed"] is None
    assert [r["extra"]["tag"] for r in rows] == ["x", "7", None]  # a column with text stays text


def test_jsonl_columns_are_the_union_of_every_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"image": "a.png"}\n{"image": "b.png", "model": "sd", "meta": {"k": [1, 2]}}\n')
    src = open_source(path)
    assert src.columns == ("image", "model", "meta") and not src.has_prompts
    rows = list(src.iter_rows())
    assert rows[0]["extra"] == {"model": None, "meta": None}
    assert rows[1]["extra"] == {"model": "sd", "meta": '{"k": [1, 2]}'}  # nested values as JSON text


def test_list_identity_is_the_content_not_the_length(tmp_path):
    a = [{"image": np.zeros((4, 4, 3), np.uint8), "prompt": "x"}, {"image": np.ones((4, 4, 3), np.uint8)}]
    same = [{"image": np.zeros((4, 4, 3), np.uint8), "prompt": "x"}, {"image": np.ones((4, 4, 3), np.uint8)}]
    other_pixels = [{"image": np.zeros((4, 4, 3), np.uint8), "prompt": "x"}, {"image": np.full((4, 4, 3), 2, np.uint8)}]
    other_prompt = [{"image": np.zeros((4, 4, 3), np.uint8), "prompt": "y"}, {"image": np.ones((4, 4, 3), np.uint8)}]
    other_column = [{**a[0], "model": "m"}, a[1]]
    ident = ListSource(a).identity()
    assert ListSource(same).identity() == ident
    for other in (other_pixels, other_prompt, other_column):
        assert ListSource(other).identity() != ident
    # lists of paths: a file rewritten under the same name is noticed
    p = tmp_path / "a.png"
    p.write_bytes(b"one")
    before = ListSource([{"image": p}]).identity()
    p.write_bytes(b"other content")
    assert ListSource([{"image": p}]).identity() != before


def test_folder_and_manifest_identity_follow_their_content(photo_dir, tmp_path):
    before = open_source(photo_dir).identity()
    (photo_dir / "coffee.jpg").write_bytes((photo_dir / "coffee.jpg").read_bytes() + b"\0")
    assert open_source(photo_dir).identity() != before
    m = tmp_path / "m.jsonl"
    lines = [json.dumps({"image": f"{i}.png", "prompt": "p" * 2000}) for i in range(1000)]  # > 1 MiB
    m.write_text("\n".join(lines) + "\n")
    before = open_source(m).identity()
    m.write_text("\n".join(lines[:-1] + [lines[-1].replace("999.png", "998.png")]) + "\n")  # same size, last row
    assert open_source(m).identity() != before
    # the files a manifest names: an image rewritten under the same name is noticed (size and mtime by default,
    # the bytes with content_hash), and a missing one is stamped as missing
    (tmp_path / "5.png").write_bytes(b"one")
    before, hashed = open_source(m).identity(), open_source(m).identity(content_hash=True)
    assert before["images"].startswith("size+mtime:") and hashed["images"].startswith("sha256:")
    (tmp_path / "5.png").write_bytes(b"two, longer")
    assert open_source(m).identity() != before
    assert open_source(m).identity(content_hash=True) != hashed


def _odd_entries(folder):
    """A dangling symbolic link, a loop of two links and a folder, each named like an image."""
    import os

    os.symlink("gone.png", folder / "dangling.png")
    os.symlink("loop_b.png", folder / "loop_a.png")
    os.symlink("loop_a.png", folder / "loop_b.png")
    (folder / "folder.jpg").mkdir()
    return {"dangling.png": "dangling symbolic link (to gone.png, which does not exist)",
            "loop_a.png": "symbolic link loop", "loop_b.png": "symbolic link loop",
            "folder.jpg": "a directory, not an image file"}


def test_a_folder_lists_dangling_links_loops_and_folders_named_like_images(photo_dir):
    """Each becomes a row (and, when scored, a row with its error), never silently left out."""
    from rewardbench.images import path_problem

    odd = _odd_entries(photo_dir)
    src = open_source(photo_dir)
    names = [r["image"].rsplit("/", 1)[-1] for r in src.iter_rows()]
    assert len(src) == len(names) == 5 + len(odd) and set(odd) <= set(names)
    assert {n: path_problem(photo_dir / n) for n in odd} == odd
    assert path_problem(photo_dir / "chelsea.jpg") is None
    with pytest.raises(SourceError, match="dangling.png: dangling symbolic link"):
        open_source(photo_dir / "dangling.png")


def test_odd_entries_become_rows_with_their_error(photo_dir, tmp_path):
    from rewardbench.harness import Scorer

    odd = _odd_entries(photo_dir)
    res = Scorer(["jpeg-compressibility"], progress=False, num_workers=0).run(photo_dir)
    t = res.table.set_index(res.table["image"].str.rsplit("/", n=1).str[-1])
    assert res.n_failed == len(odd) and res.summary["scored"] == 5
    for name, problem in odd.items():  # the error says what the entry is, not "no such file"
        assert t.loc[name, "error"].startswith(str(photo_dir / name)) and problem in t.loc[name, "error"], \
            t.loc[name, "error"]
    # a manifest naming them gives the same rows
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"image": str(photo_dir / n)}) + "\n" for n in ["chelsea.jpg", *odd]))
    res = Scorer(["jpeg-compressibility"], progress=False, num_workers=0).run(m)
    assert res.n_failed == len(odd) and res.table["error"].isna().tolist() == [True] + [False] * len(odd)
