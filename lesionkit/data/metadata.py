"""Patient metadata as model input, encoded as the SIIM-ISIC 2020 1st-place solution did (methods-b §A.3, §C.3).

Features, in this order: sex (male 1, female 0, missing -1), age/90 (missing 0), [n_images = log1p(images of the
same patient in the table being encoded; missing patient -> 1)], [image_size = ln(file bytes)], then one-hot sites
in alphabetical order plus a final `site_nan` column (HAM10000's 'unknown' site counts as not recorded). `n_images`
and `image_size` are off by default: both leak acquisition (how often a patient was photographed, how a JPEG was
encoded), so they are opt-in.

Differences from the originals, on purpose: the site categories are fitted on the training rows only (the original
called get_dummies on train+test); a site unseen in training encodes as all zeros; missing values are handled
explicitly (`missing="first_place"`: the constants above; `missing="impute"`: training-set median age and modal sex,
as the multimodal repo meant to do but, under pandas Copy-on-Write, did not).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lesionkit.data.metadata_values import MISSING_MARKERS

MISSING_MODES = ("first_place", "impute")


@dataclass
class MetaEncoder:
    """Fit on the training rows, then `transform` any table with the canonical columns (sex, age, site, ...)."""

    use_n_images: bool = False
    use_image_size: bool = False
    missing: str = "first_place"
    sites: list[str] = field(default_factory=list)
    age_fill: float = 0.0
    sex_fill: float = -1.0
    fitted: bool = False

    def __post_init__(self) -> None:
        if self.missing not in MISSING_MODES:
            raise ValueError(f"missing={self.missing!r}: choose from {MISSING_MODES}")

    @property
    def feature_names(self) -> list[str]:
        names = ["sex", "age"]
        if self.use_n_images:
            names.append("n_images")
        if self.use_image_size:
            names.append("image_size")
        return names + [f"site_{s}" for s in self.sites] + ["site_nan"]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def fit(self, df: pd.DataFrame) -> MetaEncoder:
        """Learn site categories (and, for missing='impute', the fill values) from training rows only."""
        self.sites = sorted(site_values(df["site"]).dropna().unique())
        if self.missing == "impute":
            age = pd.to_numeric(df["age"], errors="coerce")
            self.age_fill = float(age.median() / 90.0) if age.notna().any() else 0.0
            sex = _sex_code(df["sex"])
            known = sex[sex >= 0]
            self.sex_fill = float(known.mode().iloc[0]) if len(known) else -1.0
        else:
            self.age_fill, self.sex_fill = 0.0, -1.0
        self.fitted = True
        return self

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """(n_rows, n_features) float32; NaN never reaches the model."""
        if not self.fitted:
            raise RuntimeError("MetaEncoder.transform before fit: fit it on the training rows first")
        cols: list[np.ndarray] = []
        sex = _sex_code(df["sex"]).to_numpy(float)
        cols.append(np.where(sex < 0, self.sex_fill, sex))
        age = pd.to_numeric(df["age"], errors="coerce").to_numpy(float) / 90.0
        cols.append(np.where(np.isnan(age), self.age_fill, age))
        if self.use_n_images:
            pid = df["patient_id"]
            counts = pid.map(pid.value_counts()).to_numpy(float)
            cols.append(np.log1p(np.where(np.isnan(counts), 1.0, counts)))
        if self.use_image_size:
            cols.append(np.array([math.log(max(os.path.getsize(p), 1)) for p in df["path"]], float))
        site = site_values(df["site"])
        for s in self.sites:
            cols.append((site == s).to_numpy(float))
        cols.append(site.isna().to_numpy(float))
        return np.stack(cols, 1).astype(np.float32)

    def fit_transform(self, df: pd.DataFrame) -> np.ndarray:
        return self.fit(df).transform(df)


    def to_dict(self) -> dict:
        return {"kind": "lesionkit.MetaEncoder", "feature_names": self.feature_names, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> MetaEncoder:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        """JSON beside the run's weights, so inference encodes exactly as training did."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> MetaEncoder:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _sex_code(s: pd.Series) -> pd.Series:
    low = s.astype(object).map(lambda v: str(v).strip().lower())
    return low.map({"male": 1.0, "female": 0.0}).astype(float).fillna(-1.0)


def site_values(site: pd.Series) -> pd.Series:
    """Sites stripped, with "not recorded" markers as None: HAM10000 writes 'unknown' where the site was not
    recorded, which belongs in `site_nan` beside the empty cells, not in a site category of its own."""

    def clean(s: object) -> str | None:
        text = "" if s is None or (isinstance(s, float) and math.isnan(s)) else str(s).strip()
        return None if text.lower() in MISSING_MARKERS else text

    return site.astype(object).map(clean)
