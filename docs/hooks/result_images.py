"""Copy committed result images into the site (run by mkdocs-gen-files), so pages show them where the commands
that make them wrote them, without a second copy in docs/."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = {  # page-relative name in the site -> the committed file
    "results/learning_curve.png": "scripts/training/results/learning_curve.png",
    "results/flow_learning_curve.png": "scripts/training/results/flow_learning_curve.png",
    "results/flux_flow_learning_curve.png": "scripts/training/results/flux/flow_learning_curve.png",
}

if __name__ == "<run_path>":  # mkdocs-gen-files runs this file with runpy.run_path
    import mkdocs_gen_files

    for name, source in IMAGES.items():
        with mkdocs_gen_files.open(name, "wb") as f:
            f.write((ROOT / source).read_bytes())
