"""Shared fixtures: the real data in ../shared/data (skipped when absent) and a small synthetic set."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

# pytest-xdist runs one worker per core: one BLAS/OpenMP thread each, or the workers (and the notebook kernels they
# start, which inherit this environment) oversubscribe the cores and OpenMP's spin-waits slow everything down badly.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The real datasets, given at run time through LESIONKIT_DATA (the Makefile points it at ../shared/data)."""
    value = os.environ.get("LESIONKIT_DATA")
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("real data absent: set LESIONKIT_DATA to the shared data folder (make test does)")
    return path


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dermoscopy set (64 px), generated once per test session."""
    from lesionkit.data.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("synthetic"), n_lesions=60, size=64, seed=0)


def max_drop_path(model) -> float:
    """The deepest block's stochastic-depth rate (timm scales it with depth up to drop_path_rate)."""
    from timm.layers import DropPath

    return max((m.drop_prob for m in model.modules() if isinstance(m, DropPath)), default=0.0)


def write_derm7pt(root: Path) -> None:
    """derm7pt's meta/ index files: rows 0-3 train, 4 valid, 5-7 test (one of them 'miscellaneous', dropped)."""
    import pandas as pd
    from PIL import Image

    diags = ["basal cell carcinoma", "clark nevus", "melanoma", "seborrheic keratosis", "lentigo", "vascular lesion",
             "miscellaneous", "dermatofibroma"]
    meta = pd.DataFrame({"case_num": range(1, 9), "diagnosis": diags, "seven_point_score": 0})
    for c in ("pigment_network", "streaks", "pigmentation", "regression_structures", "dots_and_globules",
              "blue_whitish_veil", "vascular_structures"):
        meta[c] = "absent"
    meta["level_of_diagnostic_difficulty"], meta["elevation"], meta["location"] = "low", "flat", "back"
    meta["sex"], meta["management"] = "female", "excision"
    meta["clinic"] = [f"NEL/Nel{i:03d}.jpg" for i in range(8)]
    meta["derm"] = [f"NEL/NEL{i:03d}.jpg" for i in range(8)]
    (root / "meta").mkdir()
    meta.to_csv(root / "meta" / "meta.csv", index=False)
    for part, idx in (("train", [0, 1, 2, 3]), ("valid", [4]), ("test", [5, 6, 7])):
        pd.DataFrame({"indexes": idx}).to_csv(root / "meta" / f"{part}_indexes.csv", index=False)
    for p in list(meta.derm) + list(meta.clinic):
        (root / "images" / p).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 18), (90, 60, 40)).save(root / "images" / p)


# --- issue 31: an official test download linked in, and a folder this user cannot list ---------------------------
ISIC2018 = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
TEST18 = {"ISIC_0034524": "NV", "ISIC_0034525": "VASC", "ISIC_0034526": "MEL"}


def official_test_download(root: Path, images: Path) -> Path:
    """An ISIC 2018 Task 3 test-only download whose image folder is a symbolic link to ``images``, as users link
    datasets in."""
    root.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame({"image": list(TEST18)})
    for c in ISIC2018:
        df[c] = [1.0 if v == c else 0.0 for v in TEST18.values()]
    df.to_csv(root / "ISIC2018_Task3_Test_GroundTruth.csv", index=False)
    images.mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(TEST18):
        Image.new("RGB", (24, 18), (40 * k, 90, 60)).save(images / f"{i}.jpg")
    (root / "ISIC2018_Task3_Test_Input").symlink_to(images, target_is_directory=True)
    return root


def refuse_listing(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``folder`` unreadable: chmod 000, and (root reads anything) os.scandir refusing it as the kernel would."""
    folder.chmod(0)
    real = os.scandir

    def scandir(path: object = ".") -> object:
        if os.path.realpath(os.fspath(path)) == os.path.realpath(folder):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
