"""The zoo's catalogue: every registered reward's spec as a table row (`RewardSpec.as_row`), read without
importing the zoo or torch, so that ``rewardbench list`` answers in a fraction of a second.

The rows live in ``rewards/catalog.json`` (installed with the zoo) and are written from the live registry by
``python -m rewardbench.catalog``; ``tests/test_registry.py`` fails when they no longer match it, saying to run
that command. The catalogue describes the zoo only: with reward plugins installed (entry points of the group
``rewardbench.rewards``) `catalog_rows` gives None and the caller asks the registry itself.

Example:
    >>> rows = catalog_rows()
    >>> next(r for r in rows if r["name"] == "jpeg-compressibility")["category"]
    'baseline'
"""

from __future__ import annotations

import json
from importlib import metadata, resources
from pathlib import Path
from typing import Any

ZOO_PACKAGE = "rewardbench.rewards"  # the registry's zoo (registry.ZOO_PACKAGE; not imported here: it loads torch)
PLUGIN_GROUP = "rewardbench.rewards"  # registry.ENTRY_POINT_GROUP
FILE = "catalog.json"


def catalog_path() -> Path:
    """Where the catalogue sits: ``catalog.json`` of the zoo package."""
    return Path(str(resources.files(ZOO_PACKAGE) / FILE))


def catalog_rows() -> list[dict[str, Any]] | None:
    """The zoo's rows, or None when they cannot stand for the registry (a plugin is installed, or the file is
    missing)."""
    if any(True for _ in metadata.entry_points(group=PLUGIN_GROUP)):
        return None
    path = catalog_path()
    if not path.is_file():
        return None
    return json.loads(path.read_text())["rewards"]


def live_catalog() -> dict[str, Any]:
    """The catalogue as the registry has it now (imports the zoo): categories and one row per reward."""
    from .registry import REGISTRY
    from .spec import CATEGORIES

    return {"categories": list(CATEGORIES), "rewards": [s.as_row() for s in REGISTRY.specs()
                                                        if REGISTRY.entry(s.name).origin == "zoo"]}


def catalog_categories() -> list[str] | None:
    """The categories a spec may have, as the catalogue records them (None without the file)."""
    path = catalog_path()
    return json.loads(path.read_text())["categories"] if path.is_file() else None


def write_catalog(path: Path | None = None) -> Path:
    """Write `live_catalog` to ``path`` (default: `catalog_path`)."""
    path = path or catalog_path()
    path.write_text(json.dumps(live_catalog(), indent=1) + "\n")
    return path


if __name__ == "__main__":  # python -m rewardbench.catalog
    print(f"wrote {write_catalog()}")
