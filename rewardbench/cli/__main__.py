"""``python -m rewardbench.cli``: the same as the ``rewardbench`` command (how ``torchrun`` and ``accelerate
launch`` start it on several processes)."""

import sys

from .main import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
