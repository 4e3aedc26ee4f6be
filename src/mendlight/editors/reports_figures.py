"""TensorBoard dashboards of a test run: every subset's metrics as scalars, and figures.

At the end of ``mendlight test`` (rank 0) the results (:func:`mendlight.reporting.build_results`) become:

* scalars ``test/<subset>/<metric>`` for every subset (``all``, known and unknown facts, relations seen and
  not seen in training), logged at the training step of the tested checkpoint, so that they sit on the
  training curve's step axis (Lightning's own ``test/<metric>`` points are at step 0);
* the figure ``test/figures/es_by_subset``: ES, ES on the edit prompt and on rephrases for each subset;
* the figure ``test/figures/es_by_relation``: ES per relation, relations not seen in training hatched.

Figures are plain matplotlib ``Figure`` objects (no pyplot, so the user's backend is never changed), rendered
by TensorBoard's writer and closed after logging.
"""

from __future__ import annotations

from typing import Any

#: (key, label) of the bars of ``es_by_subset``.
_ES_KEYS = (("es", "ES"), ("es_edit", "ES (edit)"), ("es_equiv", "ES (rephrase)"))


def subset_scalars(results: dict[str, Any]) -> dict[str, float]:
    """``{"test/<subset>/<metric>": value}`` for every subset and every numeric metric."""
    out: dict[str, float] = {}
    for subset, summary in results.get("subsets", {}).items():
        for key, value in summary.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[f"test/{subset}/{key}"] = float(value)
    return out


def _axes(width: float, height: float):
    """A new figure of that size (inches) and its one axes, outside pyplot's figure manager."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def es_by_subset_figure(results: dict[str, Any]):
    """A grouped bar chart of ES, edit ES and rephrase ES per subset (None when no subset has ES)."""
    subsets = [(name, s) for name, s in results.get("subsets", {}).items() if s.get("es") is not None]
    if not subsets:
        return None
    fig, ax = _axes(1.6 + 1.4 * len(subsets), 3.2)
    width = 0.8 / len(_ES_KEYS)
    for j, (key, label) in enumerate(_ES_KEYS):
        values = [s.get(key) if s.get(key) is not None else 0.0 for _, s in subsets]
        ax.bar([i + j * width for i in range(len(subsets))], values, width, label=label)
    ax.set_xticks([i + width for i in range(len(subsets))])
    ax.set_xticklabels([f"{name}\n(n={s.get('n_records')})" for name, s in subsets], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("edit success")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def es_by_relation_figure(results: dict[str, Any]):
    """ES per relation as horizontal bars, relations not seen in training hatched (None without relations)."""
    by_relation = [(rel, s) for rel, s in results.get("by_relation", {}).items() if s.get("es") is not None]
    if not by_relation:
        return None
    fig, ax = _axes(6, 0.8 + 0.25 * len(by_relation))
    names = [f"{rel} (n={s.get('n_records')})" for rel, s in by_relation]
    bars = ax.barh(names, [s["es"] for _, s in by_relation])
    for bar, (_, s) in zip(bars, by_relation, strict=True):
        if s.get("seen") is False:
            bar.set_hatch("//")
    ax.set_xlim(0, 1)
    ax.set_xlabel("edit success (hatched: relation not seen in training)")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def log_test_dashboards(experiment, results: dict[str, Any], step: int) -> list[str]:
    """Write the subset scalars and the figures to a TensorBoard ``SummaryWriter``; return their tags."""
    tags = []
    for tag, value in subset_scalars(results).items():
        experiment.add_scalar(tag, value, step)
        tags.append(tag)
    for tag, make in (
        ("test/figures/es_by_subset", es_by_subset_figure),
        ("test/figures/es_by_relation", es_by_relation_figure),
    ):
        figure = make(results)
        if figure is not None:
            experiment.add_figure(tag, figure, step, close=True)
            tags.append(tag)
    return tags
