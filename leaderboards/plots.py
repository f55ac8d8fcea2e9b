"""PNG plots of leaderboard rows: values with their intervals per board, and clustered reward x reward heat maps.

Each function returns PNG bytes (and writes them when given a path), so the HTML page can embed them and
the CLI can save them. Matplotlib runs headless (Agg).

    >>> import pandas as pd
    >>> rows = pd.DataFrame({"subject": ["a", "b"], "value": [0.6, 0.4], "ci_low": [0.5, 0.3],
    ...                      "ci_high": [0.7, 0.5], "metric": "accuracy", "judge": "human"})
    >>> bar_chart(rows, title="demo")[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd


def _figure_bytes(fig, path: str | os.PathLike | None) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
    return data


def bar_chart(rows: pd.DataFrame, *, title: str = "", label: str = "subject",
              path: str | os.PathLike | None = None) -> bytes:
    """Horizontal bars of ``value`` per ``label`` with ``[ci_low, ci_high]`` whiskers, best on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = rows.sort_values("value", ascending=True)
    v = df["value"].to_numpy(float)
    lo, hi = df["ci_low"].to_numpy(float), df["ci_high"].to_numpy(float)
    err = np.vstack([np.where(np.isfinite(lo), v - lo, 0.0), np.where(np.isfinite(hi), hi - v, 0.0)])
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(df) + 1.2))
    ax.barh(df[label].astype(str), v, xerr=err, color="#4C72B0", ecolor="#333333", capsize=3)
    ax.set_xlabel(str(df["metric"].iloc[0]) if "metric" in df.columns and len(df) else "value")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _figure_bytes(fig, path)


def matrix_from_rows(rows: pd.DataFrame, metric: str = "pair_agreement") -> pd.DataFrame:
    """Square subject x judge matrix of ``metric`` (e.g. reward-vs-reward agreement rows), diagonal 1.

        >>> r = pd.DataFrame({"subject": ["a", "b"], "judge": ["b", "a"], "metric": "m", "value": [.2, .2]})
        >>> matrix_from_rows(r, "m").to_numpy().tolist()
        [[1.0, 0.2], [0.2, 1.0]]
    """
    sub = rows[rows["metric"] == metric]
    names = sorted(set(sub["subject"]) | set(sub["judge"]))
    m = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for r in sub.itertuples():
        m.loc[r.subject, r.judge] = float(r.value)
    return m


def cluster_order(matrix: pd.DataFrame) -> list[str]:
    """Rows of a similarity matrix (1 = identical) ordered by average-linkage clustering on 1 - similarity.

        >>> m = pd.DataFrame([[1, .1, .9], [.1, 1, .2], [.9, .2, 1]], index=list("abc"), columns=list("abc"))
        >>> cluster_order(m)
        ['b', 'a', 'c']
    """
    names = list(matrix.index)
    if len(names) < 3:
        return names
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    sim = matrix.loc[names, names].to_numpy(float)
    dist = np.clip(1.0 - (sim + sim.T) / 2.0, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    return [names[i] for i in leaves_list(linkage(squareform(dist, checks=False), method="average"))]


def heatmap(matrix: pd.DataFrame, *, title: str = "", path: str | os.PathLike | None = None,
            vmin: float = 0.0, vmax: float = 1.0) -> bytes:
    """A clustered heat map of a square reward x reward matrix, each cell annotated with its value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = cluster_order(matrix)
    m = matrix.loc[order, order].to_numpy(float)
    size = 1.2 + 0.75 * len(order)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(m, cmap="RdBu", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(order)), order, rotation=45, ha="right")
    ax.set_yticks(range(len(order)), order)
    for i in range(len(order)):
        for j in range(len(order)):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(m[i, j] - (vmin + vmax) / 2) > 0.3 * (vmax - vmin) else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=10)
    return _figure_bytes(fig, path)
