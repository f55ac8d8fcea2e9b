"""Ray is an optional extra: without it everything else imports and runs, and each Ray feature says how to
install it (exit 2 on the command line). Ray is hidden in a subprocess, so this runs whether it is installed or not."""

from __future__ import annotations

import subprocess
import sys
import textwrap

HIDE_RAY = textwrap.dedent('''
    import importlib.abc, sys
    class _Hidden(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "ray":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, _Hidden())
''')

CHECK = HIDE_RAY + textwrap.dedent('''
    import torch, rewardbench
    from click.testing import CliRunner
    # importable without Ray
    import rewardbench.service, rewardbench.http_service, rewardbench.remote, rewardbench.http_client
    from rewardbench.cli.serve import serve
    from rewardbench.wire import RayNotInstalledError

    assert rewardbench.load_reward("jpeg-compressibility")(torch.rand(1, 3, 8, 8)).scores.shape == (1,)
    try:
        rewardbench.load_reward("jpeg-compressibility", remote="ray")
    except RayNotInstalledError as e:
        print("load_reward:", e)
    r = CliRunner().invoke(serve, ["--rewards", "jpeg-compressibility"])
    print("serve:", r.exit_code, r.output.strip())
    import json, numpy as np
    from PIL import Image
    from rewardbench.cli.score import score
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save("one.png")
    open("m.jsonl", "w").write(json.dumps({"image": "one.png", "prompt": "x"}) + "\\n")
    r = CliRunner().invoke(score, ["--model", "jpeg-compressibility", "--images", "m.jsonl", "--engine", "ray"])
    print("score:", r.exit_code, r.output.strip().splitlines()[-1])
''')


def test_without_ray_the_rest_works_and_ray_features_say_how_to_install_it(tmp_path):
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("load_reward:") and "pip install 'rewardbench[ray]'" in lines[0]
    assert lines[1].startswith("serve: 2 error:") and "pip install 'rewardbench[ray]'" in lines[1]
    assert lines[2].startswith("score: 2 error:") and "pip install 'rewardbench[ray]'" in lines[2]
