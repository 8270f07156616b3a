"""What the synthetic dermoscopy classes look like: per-diagnosis ABCD criteria, structures and who has them, after
HAM10000's descriptions (probabilities, not rules: classes overlap), and the pooled class-free look of the control."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
HAM_TO_ISIC2018 = {"mel": "MEL", "nv": "NV", "bcc": "BCC", "akiec": "AKIEC", "bkl": "BKL", "df": "DF", "vasc": "VASC"}
ISIC2020_DIAGNOSIS = {"mel": "melanoma", "nv": "nevus", "bcc": "basal cell carcinoma", "akiec": "actinic keratosis",
                      "bkl": "seborrheic keratosis", "df": "dermatofibroma", "vasc": "vascular lesion"}
# Class frequencies: HAM10000's ordering, softened so that small runs still see every class.
DEFAULT_PRIOR = {"nv": 0.40, "mel": 0.15, "bkl": 0.13, "bcc": 0.10, "akiec": 0.08, "df": 0.07, "vasc": 0.07}

HAM_SITES = ("back", "lower extremity", "trunk", "upper extremity", "abdomen", "face", "chest", "foot", "scalp",
             "neck", "hand", "ear", "genital", "acral", "unknown")
HAM_TO_ISIC2020_SITE = {"back": "torso", "trunk": "torso", "abdomen": "torso", "chest": "torso",
                        "lower extremity": "lower extremity", "foot": "lower extremity",
                        "upper extremity": "upper extremity", "hand": "upper extremity",
                        "face": "head/neck", "scalp": "head/neck", "neck": "head/neck", "ear": "head/neck",
                        "genital": "oral/genital", "acral": "palms/soles", "unknown": np.nan}


@dataclass(frozen=True)
class ClassLook:
    """How one diagnosis tends to look and who tends to have it (probabilities, not rules: classes overlap)."""

    radius: tuple[float, float]          # lesion radius as a fraction of the image side (mean, sd)
    asymmetry: float                     # amplitude of odd harmonics + elongation
    irregularity: float                  # amplitude of high harmonics of the border
    fuzz: float                          # border softness
    palette: tuple[tuple[int, int, int], ...]  # RGB colours mixed inside the lesion
    n_colours: tuple[int, int]           # how many of the palette colours appear (min, max)
    structures: dict[str, float]         # structure -> probability of being present
    age: tuple[float, float]             # (mean, sd) in years
    p_male: float
    sites: dict[str, float]              # HAM localization -> weight
    dx_type: dict[str, float]            # how the diagnosis was confirmed


BROWN, DARK, BLACK, TAN = (120, 70, 40), (70, 40, 25), (30, 20, 20), (170, 120, 80)
BLUEGREY, PINK, RED, PURPLE, WHITE = (110, 120, 145), (215, 140, 140), (170, 40, 50), (110, 40, 80), (235, 225, 220)

LOOKS: dict[str, ClassLook] = {
    "nv": ClassLook((0.17, 0.04), 0.05, 0.03, 0.05, (BROWN, TAN, DARK), (1, 2),
                    {"network": 0.7, "globules": 0.3}, (42, 15), 0.48,
                    {"back": 4, "trunk": 3, "lower extremity": 2, "upper extremity": 2, "abdomen": 1},
                    {"follow_up": 0.5, "histo": 0.25, "consensus": 0.2, "confocal": 0.05}),
    "mel": ClassLook((0.24, 0.05), 0.30, 0.12, 0.10, (DARK, BLACK, BLUEGREY, BROWN, RED), (3, 5),
                     {"network": 0.5, "streaks": 0.55, "veil": 0.5, "dots": 0.5}, (62, 14), 0.56,
                     {"back": 4, "lower extremity": 3, "upper extremity": 2, "trunk": 2, "face": 1},
                     {"histo": 0.9, "confocal": 0.05, "consensus": 0.05}),
    "bkl": ClassLook((0.20, 0.05), 0.15, 0.06, 0.03, (TAN, BROWN, (150, 110, 70)), (1, 3),
                     {"milia": 0.7, "dots": 0.2}, (64, 13), 0.52,
                     {"face": 3, "back": 3, "trunk": 2, "chest": 1, "upper extremity": 1},
                     {"histo": 0.5, "consensus": 0.3, "confocal": 0.15, "follow_up": 0.05}),
    "bcc": ClassLook((0.18, 0.05), 0.15, 0.08, 0.08, (PINK, BLUEGREY, (200, 150, 150)), (2, 3),
                     {"vessels": 0.8, "globules": 0.4}, (67, 12), 0.60,
                     {"face": 4, "scalp": 1, "ear": 1, "neck": 1, "back": 2, "trunk": 1},
                     {"histo": 0.95, "consensus": 0.05}),
    "akiec": ClassLook((0.17, 0.05), 0.20, 0.10, 0.16, (PINK, RED, TAN), (2, 3),
                       {"scale": 0.8, "vessels": 0.3}, (70, 11), 0.62,
                       {"face": 4, "scalp": 2, "hand": 2, "upper extremity": 1},
                       {"histo": 0.95, "consensus": 0.05}),
    "df": ClassLook((0.13, 0.03), 0.08, 0.05, 0.09, (BROWN, TAN), (1, 2),
                    {"central_white": 0.85, "network": 0.5}, (45, 13), 0.35,
                    {"lower extremity": 5, "upper extremity": 2, "trunk": 1},
                    {"histo": 0.5, "consensus": 0.45, "follow_up": 0.05}),
    "vasc": ClassLook((0.14, 0.04), 0.10, 0.04, 0.03, (RED, PURPLE, (190, 60, 90)), (2, 3),
                      {"lacunae": 0.9}, (50, 18), 0.45,
                      {"trunk": 2, "lower extremity": 2, "face": 1, "upper extremity": 1, "abdomen": 1},
                      {"consensus": 0.5, "histo": 0.45, "follow_up": 0.05}),
}


def pooled_look() -> ClassLook:
    """The class-free control: every parameter averaged over classes, so no look reveals a diagnosis."""
    looks = list(LOOKS.values())
    palette = tuple(dict.fromkeys(c for lk in looks for c in lk.palette))
    structures = {s: float(np.mean([lk.structures.get(s, 0.0) for lk in looks]))
                  for s in dict.fromkeys(s for lk in looks for s in lk.structures)}
    sites: dict[str, float] = {}
    dx: dict[str, float] = {}
    for lk in looks:
        for k, v in lk.sites.items():
            sites[k] = sites.get(k, 0.0) + v / sum(lk.sites.values())
        for k, v in lk.dx_type.items():
            dx[k] = dx.get(k, 0.0) + v
    mean = lambda f: float(np.mean([f(lk) for lk in looks]))  # noqa: E731
    return ClassLook((mean(lambda lk: lk.radius[0]), 0.06), mean(lambda lk: lk.asymmetry),
                     mean(lambda lk: lk.irregularity), mean(lambda lk: lk.fuzz), palette, (1, 5), structures,
                     (mean(lambda lk: lk.age[0]), 17.0), mean(lambda lk: lk.p_male), sites, dx)
