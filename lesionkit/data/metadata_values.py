"""Which patient-metadata values are possible, and what to do with the others.

An age of -5 or 999 or a sex of "M?" is a typing error, not a patient: left alone it reaches the multimodal model as
age/90 = 11.1, so the readers refuse it by default, naming the rows. `bad_metadata="missing"` (a reader keyword
through `load_dataset`, the notebooks' `bad_metadata` parameter) treats such values as not recorded instead, with a
warning naming the rows. Sites are free vocabulary (every layout names them differently): a site no known layout
uses is only warned about.
"""
from __future__ import annotations

import contextlib
import contextvars
import warnings
from typing import Any, Iterator

import numpy as np
import pandas as pd

from lesionkit.data.errors import MetadataValueError
from lesionkit.data.problems import line_of, listing, raise_or_collect

AGE_RANGE = (0.0, 120.0)  # years; ISIC's age_approx is in 5-year steps 0-85, HAM10000's 0-85, derm7pt none
BAD_METADATA_POLICIES = ("raise", "missing")
SEX_VALUES = {"male": "male", "female": "female", "m": "male", "f": "female"}
MISSING_MARKERS = {"", "unknown", "nan", "none", "na", "n/a", "-", "?"}
# Sites the official layouts use (HAM10000 localization, ISIC 2017-2020 anatom_site_general(_challenge), derm7pt).
KNOWN_SITES = {
    "abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand", "lower extremity", "neck",
    "scalp", "trunk", "upper extremity", "unknown", "head/neck", "oral/genital", "palms/soles", "torso",
    "anterior torso", "posterior torso", "lateral torso", "buttocks", "genital areas", "head neck", "lower limbs",
    "upper limbs"}

_POLICY: contextvars.ContextVar[str] = contextvars.ContextVar("lesionkit_bad_metadata", default="raise")


@contextlib.contextmanager
def bad_metadata_policy(policy: str) -> Iterator[None]:
    """Within this block readers apply `policy` to impossible ages and unknown sexes (see the module docstring)."""
    if policy not in BAD_METADATA_POLICIES:
        raise ValueError(f"bad_metadata={policy!r}: expected one of {BAD_METADATA_POLICIES}")
    token = _POLICY.set(policy)
    try:
        yield
    finally:
        _POLICY.reset(token)


def current_policy() -> str:
    return _POLICY.get()


def checked_metadata(df: pd.DataFrame, src: str) -> tuple[Any, Any]:
    """(age as float, sex as 'male'/'female'/NaN). Impossible ages (outside AGE_RANGE, or text that is no number
    and no missing marker) and unknown sexes raise, or with bad_metadata='missing' become NaN with a warning."""
    found = []
    age: Any = np.nan
    if "age" in df.columns:
        text = df["age"].astype("string").str.strip().str.lower()
        age = pd.to_numeric(df["age"], errors="coerce").astype(float)
        not_number = age.isna() & text.notna() & ~text.isin(MISSING_MARKERS)
        bad = impossible_ages(age) | not_number
        if bad.any():
            found.append(f"{int(bad.sum())} impossible age(s) (outside {AGE_RANGE[0]:g}-{AGE_RANGE[1]:g} years, or "
                         f"not a number): {describe_rows(df, bad, df['age'])}")
            age = age.mask(bad)
    sex: Any = np.nan
    if "sex" in df.columns:
        sex, unknown = sex_values(df["sex"])
        if unknown.any():
            found.append(f"{int(unknown.sum())} sex value(s) that are neither male/female nor a missing marker "
                         f"('unknown', empty): {describe_rows(df, unknown, df['sex'])}")
    if found:
        what = "; ".join(found)
        if current_policy() == "missing":
            warn(f"{src}: {what}; treated as not recorded (bad_metadata='missing')")
        else:
            raise_or_collect(MetadataValueError(
                f"{src}: {what}. Fix those values in the table, or load with bad_metadata='missing' (notebooks: "
                "-p bad_metadata missing) to treat them as not recorded."))
    return age, sex


def impossible_ages(age: pd.Series) -> pd.Series:
    """True where a number was given but lies outside AGE_RANGE."""
    return age.notna() & ((age < AGE_RANGE[0]) | (age > AGE_RANGE[1]))


def sex_values(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(canonical sex: 'male' / 'female' / NaN, True where the raw value is neither a sex nor a missing marker)."""
    low = raw.astype("string").str.strip().str.lower()
    canon = low.map(lambda v: SEX_VALUES.get(v) if isinstance(v, str) else None)
    unknown = low.notna() & canon.isna() & ~low.isin(MISSING_MARKERS)
    return canon.astype(object).where(canon.notna(), np.nan), unknown.fillna(False).astype(bool)


def unknown_sites(site: pd.Series) -> pd.Series:
    low = site.astype("string").str.strip().str.lower()
    return (low.notna() & ~low.isin(KNOWN_SITES)).fillna(False).astype(bool)


def describe_rows(df: pd.DataFrame, mask: pd.Series, values: pd.Series, limit: int = 10, lines: bool = True) -> str:
    """'line 3 (img_1: -5.0), line 9 (img_7: 999.0)' for messages (a reader's raw table: file line = index + 2);
    `lines=False` for a finished dataset, whose index no longer follows the file: 'img_1: -5.0, ...'."""
    rows = [(f"{line_of(i)} ({df.at[i, 'image_id']}: {_plain(values.at[i])!r})" if lines
             else f"{df.at[i, 'image_id']}: {_plain(values.at[i])!r}") for i in df.index[mask.to_numpy()]]
    return listing(rows, limit)


def _plain(v: object) -> object:
    return v.item() if isinstance(v, np.generic) else v


def warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=4)
