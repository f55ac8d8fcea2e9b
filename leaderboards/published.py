"""Published agreement numbers (``published.csv``: value, protocol and source of each), shown beside ours.

Every row cites where the number was printed (paper table or official README) and under which protocol;
values are percentages as published. ``reward`` is our registry name when the published subject is the
same model, blank otherwise (e.g. HPSv3, not in the zoo).

    >>> p = published()
    >>> p[(p.reward == "hpsv2") & (p.dataset == "hpdv2")]["value"].tolist()
    [83.3, 83.3]
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PUBLISHED_CSV = Path(__file__).resolve().parent / "published.csv"
COLUMNS = ["reward", "subject", "dataset", "split", "metric", "value", "protocol", "source", "url"]


def published(dataset: str | None = None) -> pd.DataFrame:
    """The published numbers, all or one dataset's."""
    df = pd.read_csv(PUBLISHED_CSV, keep_default_na=False, na_values=[""])
    df["reward"] = df["reward"].fillna("")
    return df[df["dataset"] == dataset].reset_index(drop=True) if dataset else df


def side_by_side(rows: pd.DataFrame) -> pd.DataFrame:
    """Our suite-wide accuracy rows next to every published number for the same reward and dataset.

    Columns: reward, dataset, split, ours (%), ours CI, our protocol, published (%), published protocol,
    source. A reward with several published numbers (different papers, protocols) gets one line each.

        >>> ours = pd.DataFrame({"subject": ["hpsv2"], "suite": ["hpdv2"], "split": ["test"], "category": ["all"],
        ...                      "metric": ["accuracy"], "value": [0.8], "ci_low": [0.78], "ci_high": [0.82],
        ...                      "protocol": ["hpdv2"]})
        >>> side_by_side(ours)[["reward", "ours (%)", "published (%)"]].to_dict("records")[0]
        {'reward': 'hpsv2', 'ours (%)': 80.0, 'published (%)': 83.3}
    """
    ours = rows[(rows["metric"] == "accuracy") & (rows["category"] == "all")]
    pub = published()
    out = []
    for r in ours.itertuples():
        matches = pub[(pub["reward"] == r.subject) & (pub["dataset"] == r.suite)]
        for p in matches.itertuples():
            ci = (f"[{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}]" if pd.notna(r.ci_low) and pd.notna(r.ci_high)
                  else "-")
            out.append({"reward": r.subject, "dataset": r.suite, "split": r.split, "ours (%)": round(100 * r.value, 1),
                        "ours CI": ci, "our protocol": r.protocol, "published (%)": p.value,
                        "published protocol": p.protocol, "source": p.source})
    return pd.DataFrame(out, columns=["reward", "dataset", "split", "ours (%)", "ours CI", "our protocol",
                                      "published (%)", "published protocol", "source"])
