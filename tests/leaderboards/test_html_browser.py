"""The leaderboard page in a real headless browser (Debian's chromium driven by Playwright): every board renders,
clicking a header sorts, typing in a filter filters, plots load, nothing is fetched from the network, and a
screenshot is saved as a test artifact (in pytest's tmp folder, and in $REWARDBENCH_TEST_ARTIFACTS when set).

`./run test` installs chromium when it can (root, package registry reachable). Elsewhere the test skips with
the reason; under CI (``CI`` set) a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from rewardbench.benchmarks.agreement import image_rows, reward_agreement, run_agreement
from rewardbench.benchmarks.agreement_sets import photo_distortion_set
from rewardbench.cli.leaderboard import leaderboard
from rewardbench.leaderboards.board import append_rows, boards_dir, list_boards

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (it is in the test extra: pip install -e '.[test]')"
    exe = os.environ.get("REWARDBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if reason is None and not exe:
        reason = "no chromium executable (apt-get install chromium; ./run test does it when run as root online)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    return exe


@pytest.fixture(scope="module")
def page_file(tmp_path_factory) -> tuple[Path, list[str]]:
    """The committed boards plus two made here from real offline rewards, rendered by the CLI."""
    import rewardbench

    root = tmp_path_factory.mktemp("boards")
    for name in list_boards():
        shutil.copy(boards_dir() / f"{name}.csv", root / f"{name}.csv")
    rewards = ["jpeg-incompressibility", "jpeg-compressibility", "nsfw"]
    pset = photo_distortion_set(photos=("astronaut", "coffee", "rocket"), size=96)
    append_rows("browser-agreement", run_agreement(pset, rewards, n_boot=200, progress=False).rows.to_dict("records"),
                root=root)
    scorer = rewardbench.Scorer(rewards, num_workers=0, progress=False)
    table = scorer.run(image_rows(pset)).table
    weights = {s.name: list(s.provenance) for s in scorer.slots}
    hib = {n: rewardbench.get_spec(n).higher_is_better for n in rewards}
    append_rows("browser-reward-agreement", reward_agreement(table, rewards, higher_is_better=hib, weights=weights,
                                                             suite="photos", n_boot=200).to_dict("records"), root=root)
    out = tmp_path_factory.mktemp("page") / "leaderboard.html"
    res = CliRunner().invoke(leaderboard, ["--dir", str(root), "--format", "html", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, list_boards(root)


def test_page_in_a_real_browser(page_file, tmp_path):
    exe = _chromium()
    from playwright.sync_api import sync_playwright

    path, boards = page_file
    external = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            def guard(route):
                if route.request.url.startswith(("file:", "data:")):
                    route.continue_()
                else:
                    external.append(route.request.url)
                    route.abort()

            page.route("**/*", guard)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())

            # every board renders, with its rows and its plots
            for name in boards:
                section = page.locator(f'section[data-board="{name}"]')
                assert section.count() == 1, name
                rows = section.locator("tbody tr")
                assert rows.count() > 0, name
                assert section.locator(".count").inner_text() == f"{rows.count()} rows"
            assert page.locator('section[data-board="published numbers"] tbody tr').count() >= 40
            widths = page.eval_on_selector_all("img.plot", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
            assert widths and all(w > 0 for w in widths)

            # clicking a header sorts (numbers as numbers), clicking again reverses
            board = page.locator('section[data-board="browser-agreement"]')
            header = board.locator("th", has_text="value")

            def values():
                return [float(v) for v in board.locator("tbody tr td:nth-child(7)").evaluate_all(
                    "tds => tds.map(td => td.getAttribute('data-sort'))")]

            header.click()
            assert header.get_attribute("aria-sort") == "ascending" and values() == sorted(values())
            header.click()
            assert header.get_attribute("aria-sort") == "descending" and values() == sorted(values(), reverse=True)
            assert values() != sorted(values())  # the board has different values, so the order changed

            # typing in the filter hides the rows that do not match
            total = board.locator("tbody tr").count()
            box = board.locator("input.filter")
            box.fill("nsfw")
            visible = board.locator("tbody tr:visible")
            assert 0 < visible.count() < total
            assert all("nsfw" in t for t in visible.all_inner_texts())
            assert board.locator(".count").inner_text() == f"{visible.count()} rows"
            box.fill("")
            assert board.locator("tbody tr:visible").count() == total

            # a reward's spec is a tooltip; a protocol cell explains the protocol
            tip = board.locator("tbody tr abbr").first.get_attribute("title")
            assert "licence" in tip and "is better" in tip
            assert "pairs" in board.locator("tbody tr td:nth-child(10)").first.get_attribute("title")

            shot = tmp_path / "leaderboard.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert not external, f"the page tried to fetch {external}"
    assert not errors, errors
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000
    artifacts = os.environ.get("REWARDBENCH_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "leaderboard.png")
        shutil.copy(path, Path(artifacts) / "leaderboard.html")
    print(f"screenshot: {shot}")
