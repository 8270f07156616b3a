"""Synthetic dermoscopy: the embedded default dataset, so every notebook runs with no data and no internet.

Each lesion is drawn from class-conditional ABCD criteria (asymmetry, border irregularity, colour variegation,
diameter, dermoscopic structures: network, dots/globules, streaks, blue-white veil, vessels, lacunae, milia) under
class-independent nuisances (skin tone, illumination, black vignette frames, hair, ruler marks, bubbles, blur, JPEG).
Patients own several lesions and lesions own several images (different views), so grouped splits matter. Metadata
(age, sex, site, dx_type) carries some class signal, as in HAM10000. The folder is written in the ISIC layouts the
readers understand (labels.csv, HAM10000_metadata.csv, ISIC 2018 one-hot, ISIC 2020 train.csv) with binary masks
and a PH2-style symmetry label measured on the mask itself.

`signal=False` draws every lesion from the pooled distribution of all classes: the images look alike but carry no
class information, which is the control that shows a model's score comes from the lesion and not from leakage.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from lesionkit.data.synthetic_looks import (  # noqa: F401
    BLACK,
    CLASSES,
    DARK,
    DEFAULT_PRIOR,
    HAM_SITES,
    HAM_TO_ISIC2018,
    HAM_TO_ISIC2020_SITE,
    ISIC2020_DIAGNOSIS,
    LOOKS,
    PURPLE,
    RED,
    WHITE,
    ClassLook,
    pooled_look,
)
from lesionkit.utils.paths import cache_root

GENERATOR_VERSION = 2  # 2: symmetric lesions mirror-symmetric, asymmetric ones clearly so (a learnable label)
def _choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.asarray([weights[k] for k in keys], dtype=float)
    return keys[rng.choice(len(keys), p=p / p.sum())]


def _lesion_params(rng: np.random.Generator, look: ClassLook) -> dict:
    """Everything fixed for one lesion across its images: its shape, colours and structures."""
    n_harm = 8
    amps = np.zeros(n_harm + 1)
    asymmetric = rng.random() < np.clip(look.asymmetry * 5 - 0.2, 0.02, 0.97)
    amps[2] = rng.uniform(0, 0.12 + look.asymmetry * 0.6)       # elongation (keeps both mirror axes)
    amps[4:] = rng.uniform(0, look.irregularity, n_harm - 3) / np.arange(1, n_harm - 2) ** 0.3
    if asymmetric:                                              # a clear off-centre bulge, any phases
        amps[1], amps[3] = rng.uniform(0.14, 0.24), rng.uniform(0.08, 0.16)
        phases = rng.uniform(0, 2 * np.pi, n_harm + 1)
    else:                                                       # mirror-symmetric about two axes: even
        amps[1::2] = 0.0                                        # harmonics only, all phased to one axis
        phases = -np.arange(n_harm + 1) * rng.uniform(0, np.pi)
    lo, hi = look.n_colours
    n_col = int(rng.integers(lo, min(hi, len(look.palette)) + 1))
    colours = np.asarray([look.palette[i] for i in rng.choice(len(look.palette), n_col, replace=False)], float)
    colours *= rng.uniform(0.85, 1.15, (n_col, 1))
    return {
        "radius": float(np.clip(rng.normal(*look.radius), 0.07, 0.38)),
        "amps": amps, "phases": phases,
        "fuzz": float(np.clip(rng.normal(look.fuzz, 0.02), 0.01, 0.25)),
        "colours": np.clip(colours, 0, 255), "colour_seed": int(rng.integers(2**31)),
        "structures": [s for s, p in look.structures.items() if rng.random() < p],
    }


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a coarse random grid upsampled with bicubic interpolation."""
    coarse = rng.random((cells, cells, channels)).astype(np.float32)
    out = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(out.reshape(size, size, channels), 0, 1)


def _shape_radius(theta: np.ndarray, p: dict) -> np.ndarray:
    k = np.arange(len(p["amps"]))[:, None]
    return p["radius"] * (1 + (p["amps"][:, None] * np.cos(k * theta[None] + p["phases"][:, None])).sum(0))


def _symmetry_label(p: dict, res: int = 256) -> int:
    """PH2 convention, measured on the lesion's own outline at high resolution (a lesion property, the same in
    every view): 0 symmetric about both principal axes, 1 about one, 2 about neither."""
    return int(sum(iou < 0.9 for iou in _axis_ious(p, res)))


def _axis_ious(p: dict, res: int = 256) -> tuple[float, float]:
    """IoU of the outline with its mirror image about each principal axis (1: mirror-symmetric about that axis)."""
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float32)
    dx, dy = (xx - res / 2) / res, (yy - res / 2) / res
    scale = 0.3 / p["radius"]                                   # the outline's shape, not its size
    mask = (np.hypot(dx, dy) <= _shape_radius(np.arctan2(dy, dx).ravel(), p).reshape(dx.shape) * scale)
    ys, xs = np.nonzero(mask)
    cx, cy = xs.mean(), ys.mean()
    _, vecs = np.linalg.eigh(np.cov(np.stack([xs - cx, ys - cy])))
    angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
    rot = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), 1.0)
    rot[:, 2] += (res / 2 - cx, res / 2 - cy)                   # centroid to the centre, major axis horizontal
    aligned = cv2.warpAffine(mask.astype(np.uint8), rot, (res, res), flags=cv2.INTER_NEAREST).astype(bool)
    return tuple(float((aligned & f).sum() / max((aligned | f).sum(), 1))  # type: ignore[return-value]
                 for f in (aligned[::-1, :], aligned[:, ::-1]))


def _draw_structures(img: np.ndarray, mask: np.ndarray, p: dict, rng: np.random.Generator,
                     cx: float, cy: float, r_pix: float, rot: float) -> None:
    size = img.shape[0]
    inside = np.argwhere(mask > 0.5)
    lw = max(1, size // 160)

    def points(n: int) -> np.ndarray:
        return inside[rng.integers(0, len(inside), n)] if len(inside) else np.zeros((0, 2), int)

    for s in p["structures"]:
        if s == "network":
            yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
            f = 2 * np.pi / max(3.0, r_pix / 4)
            u, v = xx * np.cos(rot) + yy * np.sin(rot), -xx * np.sin(rot) + yy * np.cos(rot)
            lines = ((np.abs(np.sin(u * f)) < 0.25) | (np.abs(np.sin(v * f)) < 0.25)) & (mask > 0.5)
            img[lines] *= 0.72
        elif s in {"dots", "globules", "milia", "lacunae"}:
            n, rad, col = {"dots": (25, 0.02, BLACK), "globules": (12, 0.05, DARK),
                           "milia": (10, 0.035, WHITE), "lacunae": (14, 0.09, PURPLE)}[s]
            for y, x in points(n):
                rr = max(1, int(r_pix * rad * rng.uniform(0.6, 1.4)))
                cv2.circle(img, (int(x), int(y)), rr, tuple(float(c) for c in col), -1, cv2.LINE_AA)
        elif s == "streaks":
            for a in rng.uniform(0, 2 * np.pi, 14):
                rr = _shape_radius(np.array([a - rot]), p)[0] * size
                p0 = (int(cx + 0.75 * rr * np.cos(a)), int(cy + 0.75 * rr * np.sin(a)))
                p1 = (int(cx + 1.18 * rr * np.cos(a)), int(cy + 1.18 * rr * np.sin(a)))
                cv2.line(img, p0, p1, tuple(float(c) for c in DARK), lw + 1, cv2.LINE_AA)
        elif s == "veil":
            veil = _smooth_noise(rng, size, 4)[..., 0] * mask
            a = (np.clip(veil - 0.35, 0, 1) * 1.6)[..., None]
            img[:] = img * (1 - a) + np.array((150, 165, 195), np.float32) * a
        elif s == "vessels":
            for y, x in points(5):
                pt, ang = np.array([x, y], float), rng.uniform(0, 2 * np.pi)
                for _ in range(6):
                    ang += rng.normal(0, 0.6)
                    nxt = pt + r_pix * 0.22 * np.array([np.cos(ang), np.sin(ang)])
                    cv2.line(img, tuple(int(v) for v in pt), tuple(int(v) for v in nxt),
                             tuple(float(c) for c in RED), lw, cv2.LINE_AA)
                    pt = nxt
        elif s == "scale":
            flakes = (_smooth_noise(rng, size, max(8, size // 6))[..., 0] > 0.62) & (mask > 0.5)
            img[flakes] = img[flakes] * 0.4 + np.array(WHITE, np.float32) * 0.6
        elif s == "central_white":
            cv2.circle(img, (int(cx), int(cy)), max(2, int(r_pix * 0.4)), tuple(float(c) for c in WHITE), -1,
                       cv2.LINE_AA)


def _render(rng: np.random.Generator, p: dict, size: int, skin: np.ndarray, nuisance: dict) -> tuple[np.ndarray, np.ndarray]:
    """One view of a lesion: the shape rotated/scaled/shifted, the colours mixed by smooth noise, then nuisances."""
    rot = rng.uniform(0, 2 * np.pi)
    scale = rng.uniform(0.85, 1.15)
    cx, cy = size * (0.5 + rng.normal(0, 0.04, 2))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = (xx - cx) / size, (yy - cy) / size
    theta, rho = np.arctan2(dy, dx) - rot, np.hypot(dx, dy)
    table = _shape_radius(np.linspace(-3 * np.pi, np.pi, 2049), p)        # r(theta) tabulated, then looked up
    idx = ((theta + 3 * np.pi) * (2048 / (4 * np.pi))).astype(np.int32)
    ratio = rho / (table[idx] * scale)
    edge = p["fuzz"]
    alpha = np.clip((1 + edge - ratio) / (2 * edge), 0, 1)
    alpha = alpha * alpha * (3 - 2 * alpha)                       # smoothstep border
    mask = ratio <= 1.0

    # skin with illumination gradient and texture
    img = np.broadcast_to(skin, (size, size, 3)).astype(np.float32).copy()
    img *= (0.92 + 0.16 * _smooth_noise(rng, size, 3))
    gx, gy = rng.normal(0, 0.12, 2)
    img *= (1 + gx * (xx / size - 0.5) + gy * (yy / size - 0.5))[..., None]

    # lesion colour: palette colours blended by smooth noise fields
    crng = np.random.default_rng(p["colour_seed"] + int(rng.integers(3)))
    cols = p["colours"]
    weights = _smooth_noise(crng, size, 5, len(cols)) ** 3 + 1e-3
    lesion = (weights[..., :, None] * cols[None, None]).sum(2) / weights.sum(2, keepdims=True)
    lesion *= (0.9 + 0.2 * _smooth_noise(rng, size, 12))
    img = img * (1 - alpha[..., None]) + lesion * alpha[..., None]
    _draw_structures(img, alpha, p, rng, cx, cy, p["radius"] * scale * size, rot)

    lw = max(1, size // 200)
    if nuisance["hair"] != "none":
        n = {"short": 6, "medium": 14, "dense": 40}[nuisance["hair"]]
        for _ in range(n):
            pts = [rng.uniform(0, size, 2)]
            ang = rng.uniform(0, 2 * np.pi)
            length = size * rng.uniform(0.15, 0.6) / 8
            for _ in range(8):
                ang += rng.normal(0, 0.15)
                pts.append(pts[-1] + length * np.array([np.cos(ang), np.sin(ang)]))
            cv2.polylines(img, [np.asarray(pts, np.int32)], False, (35.0, 25.0, 20.0), lw, cv2.LINE_AA)
    if nuisance["ruler"]:
        y0 = int(size * rng.uniform(0.82, 0.93))
        cv2.line(img, (0, y0), (size, y0), (40.0, 40.0, 40.0), lw, cv2.LINE_AA)
        for i, x in enumerate(range(0, size, max(3, size // 28))):
            cv2.line(img, (x, y0), (x, y0 - (size // 18 if i % 5 == 0 else size // 36)), (40.0, 40.0, 40.0), lw)
    if nuisance["bubbles"]:
        for _ in range(int(rng.integers(2, 7))):
            c = tuple(int(v) for v in rng.uniform(0, size, 2))
            rr = int(size * rng.uniform(0.02, 0.08))
            cv2.circle(img, c, rr, (245.0, 245.0, 245.0), max(1, lw), cv2.LINE_AA)
    if nuisance["black_frame"]:
        vign = np.hypot(xx / size - 0.5, yy / size - 0.5) > rng.uniform(0.45, 0.6)
        img[vign] = 5.0
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def make_synthetic(out_dir: str | Path, n_lesions: int = 600, size: int = 224, seed: int = 0,
                   images_per_lesion: tuple[int, int] = (1, 3), lesions_per_patient: tuple[int, int] = (1, 4),
                   prior: dict[str, float] | None = None, signal: bool = True, overwrite: bool = False) -> Path:
    """Write a seeded synthetic dermoscopy dataset to `out_dir` and return it.

    Written to a temporary sibling and renamed at the end, so an interrupted run never leaves a half dataset that
    looks complete; `dataset.json` (the last file written) marks completion. An existing complete folder with the
    same parameters is reused.
    """
    out_dir = Path(out_dir)
    params = {"version": GENERATOR_VERSION, "n_lesions": n_lesions, "size": size, "seed": seed,
              "images_per_lesion": list(images_per_lesion), "lesions_per_patient": list(lesions_per_patient),
              "prior": prior or DEFAULT_PRIOR, "signal": signal}
    marker = out_dir / "dataset.json"
    if marker.exists() and not overwrite:
        if json.loads(marker.read_text()).get("params") == params:
            return out_dir
        raise FileExistsError(f"{out_dir} holds a synthetic set made with other parameters; "
                              "pass overwrite=True or choose another folder")
    if size < 32:
        raise ValueError(f"size={size} is too small for lesion structures to be visible; use size >= 32")
    if n_lesions < len(CLASSES):
        raise ValueError(f"n_lesions={n_lesions}: need at least {len(CLASSES)} so every class appears")

    rng = np.random.default_rng(seed)
    prior = params["prior"]
    # a guaranteed minimum per class so a small set never misses a class, the rest drawn from the prior
    dx_list = [c for c in CLASSES for _ in range(max(1, int(n_lesions * 0.02)))]
    dx_list += [_choice(rng, prior) for _ in range(n_lesions - len(dx_list))]
    rng.shuffle(dx_list)
    pooled = pooled_look()

    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent if out_dir.parent.exists() else None))
    (tmp / "images").mkdir()
    (tmp / "masks").mkdir()
    rows = []
    lesion_i = img_i = patient_i = 0
    while lesion_i < n_lesions:
        patient_i += 1
        patient = {"id": f"SYNP_{patient_i:05d}", "skin": np.array([228, 190, 160]) * rng.uniform(0.55, 1.05)
                   * rng.uniform(0.95, 1.05, 3), "sex": "male" if rng.random() < 0.5 else "female",
                   "age_offset": rng.normal(0, 6)}
        for _ in range(int(rng.integers(lesions_per_patient[0], lesions_per_patient[1] + 1))):
            if lesion_i >= n_lesions:
                break
            dx = dx_list[lesion_i]
            lesion_i += 1
            look = LOOKS[dx] if signal else pooled
            p = _lesion_params(rng, look)
            age = float(np.clip(round((rng.normal(*look.age) + patient["age_offset"]) / 5) * 5, 0, 85))
            sex = patient["sex"] if rng.random() < 0.5 else ("male" if rng.random() < look.p_male else "female")
            site = _choice(rng, look.sites)
            dx_type = _choice(rng, look.dx_type)
            symmetry = _symmetry_label(p)
            for _ in range(int(rng.integers(images_per_lesion[0], images_per_lesion[1] + 1))):
                img_i += 1
                image_id = f"SYN_{img_i:07d}"
                nuis = {"hair": _choice(rng, {"none": 0.55, "short": 0.2, "medium": 0.15, "dense": 0.1}),
                        "ruler": int(rng.random() < 0.15), "bubbles": int(rng.random() < 0.1),
                        "black_frame": int(rng.random() < 0.2)}
                img, mask = _render(rng, p, size, patient["skin"], nuis)
                cv2.imwrite(str(tmp / "images" / f"{image_id}.jpg"), img[..., ::-1],
                            [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(85, 96))])
                cv2.imwrite(str(tmp / "masks" / f"{image_id}_segmentation.png"), mask.astype(np.uint8) * 255)
                rows.append({"image_id": image_id, "lesion_id": f"SYNL_{lesion_i:06d}", "patient_id": patient["id"],
                             "dx": dx, "dx_type": dx_type, "age": age if rng.random() > 0.02 else np.nan,
                             "sex": sex if rng.random() > 0.01 else "unknown", "localization": site,
                             "anatom_site_general_challenge": HAM_TO_ISIC2020_SITE[site],
                             "target": int(dx == "mel"), "benign_malignant":
                                 "malignant" if dx in {"mel", "bcc", "akiec"} else "benign",
                             "symmetry": symmetry, **nuis,
                             "filename": f"images/{image_id}.jpg",
                             "mask_filename": f"masks/{image_id}_segmentation.png"})
    df = pd.DataFrame(rows)
    _write_tables(df, tmp)
    (tmp / "dataset.json").write_text(json.dumps({"name": "synthetic", "params": params, "classes": CLASSES,
                                                  "n_images": len(df), "n_lesions": int(df.lesion_id.nunique()),
                                                  "n_patients": int(df.patient_id.nunique())}, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out_dir)
    return out_dir


def _write_tables(df: pd.DataFrame, root: Path) -> None:
    """The same lesions in each official layout, so every reader can be exercised on the synthetic set."""
    df.to_csv(root / "labels.csv", index=False)
    df[["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]].to_csv(
        root / "HAM10000_metadata.csv", index=False)
    onehot = pd.DataFrame({"image": df.image_id})
    for dx, col in HAM_TO_ISIC2018.items():
        onehot[col] = (df.dx == dx).astype(float)
    onehot.to_csv(root / "ISIC2018_Task3_Training_GroundTruth.csv", index=False)
    pd.DataFrame({"image_name": df.image_id, "patient_id": df.patient_id, "sex": df.sex.replace("unknown", np.nan),
                  "age_approx": df.age, "anatom_site_general_challenge": df.anatom_site_general_challenge,
                  "diagnosis": df.dx.map(ISIC2020_DIAGNOSIS), "benign_malignant": df.benign_malignant,
                  "target": df.target}).to_csv(root / "train.csv", index=False)


def default_synthetic_dir(signal: bool = True, n_lesions: int = 600, size: int = 224, seed: int = 0) -> Path:
    """The embedded default dataset, generated on first use and cached by its parameters."""
    key = hashlib.sha1(json.dumps([GENERATOR_VERSION, signal, n_lesions, size, seed]).encode()).hexdigest()[:10]
    name = f"synthetic{'' if signal else '-null'}-{key}"
    return make_synthetic(cache_root() / name, n_lesions=n_lesions, size=size, seed=seed, signal=signal)
