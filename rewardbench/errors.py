"""`UsageError`: a run or command that cannot work as asked, refused before any work (the command line's exit 2).

Raised by the checks of `rewardbench.preflight` and `rewardbench.outputs.check_writable`.

Example:
    >>> issubclass(UsageError, ValueError)
    True
"""

from __future__ import annotations


class UsageError(ValueError):
    """The run cannot work as asked; raised before any model loads."""
