"""The build backend: setuptools' own, plus one file in editable installs so that ``import rewardbench`` finds
this checkout from any working directory.

Why: the folders install under one namespace (``rewards/`` is ``rewardbench.rewards``), which an editable install
can only express with setuptools' import finder, and setuptools appends that finder to ``sys.meta_path``, after
the standard path finder. Run Python from the folder that holds the clone (a clone is usually named
``rewardbench``) and the path finder meets ``./rewardbench/``, a folder without ``__init__.py``, first: it takes it
for an empty namespace package (``AttributeError: module 'rewardbench' has no attribute 'list_rewards'``).
The ``.pth`` file added here runs at start-up, after setuptools' own, and moves the finder of this project to the
front. A regular (non-editable) install needs nothing: site-packages holds a real package, which wins over a
namespace folder. ``tests/test_layout.py`` checks both.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (every hook but build_editable is setuptools' own)

# site.py reads .pth files in sorted order: this name sorts after setuptools' "__editable__.rewardbench-*.pth"
PTH_NAME = "rewardbench_editable_first.pth"
PTH_LINE = ("import sys; _rb = [f for f in sys.meta_path if getattr(f, '__module__', '').startswith("
            "'__editable___rewardbench_')]; [sys.meta_path.remove(f) or sys.meta_path.insert(0, f) for f in _rb]; "
            "del _rb\n")


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """setuptools' editable wheel, with `PTH_NAME` added (and listed in its RECORD)."""
    name = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    _add_file(Path(wheel_directory) / name, PTH_NAME, PTH_LINE.encode())
    return name


def _add_file(wheel: Path, arcname: str, data: bytes) -> None:
    with zipfile.ZipFile(wheel) as z:
        entries = [(info, z.read(info)) for info in z.infolist()]
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(arcname, data)
        for info, content in entries:
            if info.filename.endswith(".dist-info/RECORD"):
                content = content.decode().rstrip("\n") + f"\n{arcname},sha256={digest},{len(data)}\n"
                content = content.encode()
            z.writestr(info, content)
