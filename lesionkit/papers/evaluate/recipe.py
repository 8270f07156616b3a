"""evaluate: trained runs on other datasets — does it generalise?

The notebook names runs and datasets; this module turns them into the cross-dataset table
(``papers.generalisation.evaluate_runs``), its heat map with intervals, ROC curves per set, and maps of external
images for the viewer. With no data it scores the newest completed run of each notebook that can be loaded on a
fresh synthetic set: new lesions and patients from the same generator (``synthetic-external``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from lesionkit.config import Config, ConfigError, param

EXTERNAL_SYNTHETIC = "synthetic-external"


@dataclass(frozen=True)
class EvaluateConfig(Config):
    notebook: ClassVar[str] = "evaluate"
    cell_first: ClassVar[tuple[str, ...]] = ("smoke",)

    runs: str = param("last", "comma-separated run folders, or 'last': the newest completed run of each notebook "
                              "that can be loaded (00_quickstart, arl, patch_attention, attention_b3, multimodal)")
    datasets: str = param(EXTERNAL_SYNTHETIC, "comma-separated dataset folders (official downloads: their test "
                                              "part), or 'synthetic-external' (new synthetic lesions and patients)")
    n_boot: int = param(200, "bootstrap resamples for the melanoma AUC's 95 % interval (0: none)", ge=0, le=100_000)
    attribution_methods: str = param("gradcam", "maps of the external images for the viewer (comma-separated; "
                                                "empty: none)")
    n_explain: int = param(8, "external images to explain per run", ge=0, le=1000)
    seed: int = param(0, "bootstrap seed", ge=0)
    smoke: bool = param(False, "tiny run: 40 bootstrap resamples and 2 explained images")
    interactive: bool | str = param("auto", "ipywidgets viewer: auto (on in a live Jupyter kernel, off under "
                                            "papermill), true or false")
    run_name: str = param("", "optional label appended to the run folder's name")

    def validate(self) -> None:
        if not [r for r in self.runs.split(",") if r.strip()]:
            raise ConfigError("runs is empty: give run folders (comma-separated) or 'last'")
        for path in self.dataset_list:
            if path != EXTERNAL_SYNTHETIC and not Path(path).expanduser().is_dir():
                raise ConfigError(f"datasets: {path!r} is not a folder; give dataset folders or "
                                  f"{EXTERNAL_SYNTHETIC!r}")
        if isinstance(self.interactive, str) and self.interactive.strip().lower() != "auto":
            raise ConfigError(f"interactive={self.interactive!r}: give true, false or auto")

    @property
    def is_interactive(self) -> bool:
        """``interactive`` resolved: "auto" is on in a live Jupyter kernel, off under papermill."""
        from lesionkit.utils.kernel import interactive_on  # lazy

        return interactive_on(self.interactive)

    @property
    def dataset_list(self) -> list[str]:
        return [d.strip() for d in self.datasets.split(",") if d.strip()]

    @property
    def methods(self) -> list[str]:
        return [m.strip() for m in self.attribution_methods.split(",") if m.strip()]

    def effective(self) -> "EvaluateConfig":
        import dataclasses

        return dataclasses.replace(self, n_boot=min(self.n_boot, 40), n_explain=min(self.n_explain, 2)) \
            if self.smoke else self


def load_runs(cfg: EvaluateConfig) -> list[Any]:
    """The runs to score (``papers.saved.load_run``): the named folders, or the newest completed loadable run of
    each notebook."""
    from lesionkit.papers.saved import LOADABLE, load_run  # lazy
    from lesionkit.records.runs import list_runs  # lazy

    refs = [r.strip() for r in cfg.runs.split(",") if r.strip()]
    if refs != ["last"]:
        return [load_run(r) for r in refs]
    newest = {}
    for info in list_runs():
        if info.get("status") == "completed" and Path(info["dir"]).parent.name in LOADABLE:
            newest[Path(info["dir"]).parent.name] = info["dir"]
    if not newest:
        raise ConfigError("runs='last': no completed run of " + ", ".join(LOADABLE) + " yet; run one first "
                          "(papermill notebooks/00_quickstart.ipynb out.ipynb -p smoke true), or name run folders")
    return [load_run(d) for d in newest.values()]


def dataset_paths(cfg: EvaluateConfig) -> list[str]:
    """The dataset folders, ``synthetic-external`` generated (cached) on first use."""
    from lesionkit.data.synthetic import default_synthetic_dir  # lazy

    return [str(default_synthetic_dir(n_lesions=120, seed=1)) if d == EXTERNAL_SYNTHETIC else d
            for d in cfg.dataset_list]


def evaluate(runs: list[Any], datasets: list[str], cfg: EvaluateConfig, record: Any) -> Any:
    """The cross-dataset table (generalisation.csv in the record)."""
    from lesionkit.papers.generalisation import evaluate_runs  # lazy

    record.update(source_runs=[str(r.dir.resolve()) for r in runs])
    return evaluate_runs(runs, datasets, record, n_boot=cfg.n_boot, seed=cfg.seed)


def roc_figure(record: Any, per_row: int = 3) -> Any:
    """The ROC curves each model drew on each dataset (figures/*_roc.png of the record), tiled into one figure."""
    import matplotlib.image as mpimg

    from lesionkit.viz.figure import Figure  # lazy

    paths = sorted(Path(record.figures).glob("*_roc.png"))
    if not paths:
        raise FileNotFoundError(f"{record.figures}: no ROC figures; run evaluate first")
    rows = (len(paths) + per_row - 1) // per_row
    fig = Figure(figsize=(4.5 * min(per_row, len(paths)), 4.2 * rows), layout="constrained")
    for i, path in enumerate(paths):
        ax = fig.add_subplot(rows, min(per_row, len(paths)), i + 1)
        ax.imshow(mpimg.imread(path))
        ax.set_title(path.stem.removesuffix("_roc").replace("__", "\non "), fontsize=8)
        ax.axis("off")
    return fig


def explain(runs: list[Any], datasets: list[str], cfg: EvaluateConfig, record: Any) -> dict[str, Any]:
    """Maps of the first dataset's first ``n_explain`` images by each run's headline model, one store per run
    (``attribution/<run>``), for the viewer."""
    from dataclasses import replace

    from lesionkit.papers.generalisation import explain_images, slug  # lazy

    stores = {}
    if not cfg.methods or not cfg.n_explain:
        return stores
    for saved in runs:
        ds = saved.test_set(datasets[0])
        sub = replace(record, dir=record.dir / "attribution" / slug(saved.dir.name))
        stores[saved.name] = explain_images(saved, ds, cfg.methods, sub, limit=cfg.n_explain)
    return stores


__all__ = ["EXTERNAL_SYNTHETIC", "EvaluateConfig", "dataset_paths", "evaluate", "explain", "load_runs", "roc_figure"]
