#!/usr/bin/env bash
# Every paper notebook once on the real data in ../shared/data, at CPU scale (small images, few epochs, a subset),
# one after another, through `python -m lesionkit train` (the notebook's own cells, minus the executed copy). Each
# run is recorded under runs/<notebook>/ with run_name "cpu-real"; the last step prints one line per run.
# These settings check that each paper's pipeline runs on its real data; they are far from the papers' scale and
# their numbers are not the papers' numbers. Run it alone: a second torch process on 2 cores slows both ~15x.
# Usage: bash bench/paper_runs_cpu.sh [notebook ...]   (default: all five)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${LESIONKIT_DATA:-$(cd .. && pwd)/shared/data}
HAM=$DATA/ham10000_224 ISIC20=$DATA/isic2020_512 PH2=$DATA/ph2
COMMON=(-p run_name cpu-real -p interactive false)

run() {  # notebook, then its -p pairs
  local nb=$1; shift
  local t0=$SECONDS
  echo "== $nb $*"
  "$PY" -m lesionkit train "$nb" "${COMMON[@]}" "$@" > "/tmp/paper_run_$nb.log" 2>&1
  local rc=$?
  echo "   $nb: exit $rc, $((SECONDS - t0)) s (log /tmp/paper_run_$nb.log)"
}

declare -A ARGS=(
  # ARL-18 and ResNet-18 from scratch (no offline ImageNet ResNet), melanoma vs rest on HAM10000; PH2 as test_dir
  [arl]="-p data_dir $HAM -p test_dir $PH2 -p depth 18 -p pretrained false -p image_size 64 -p max_images 1200
         -p epochs 3 -p crops_per_image 1 -p optimizer adam -p lr 2e-3 -p schedule one_cycle -p n_explain 2
         -p attribution_methods gradcam,native"
  # the four attention modules on Lite0 (offline ImageNet weights), HAM10000's 7 classes; PH2 as test_dir
  [attention_b3]="-p data_dir $HAM -p test_dir $PH2 -p backbone tf_efficientnet_lite0 -p folds 1 -p image_size 64
                  -p epochs 3 -p max_images 1000 -p batch_size 32 -p lr 2e-3 -p loss ce -p augment fastai
                  -p n_bootstrap 200 -p n_explain 2"
  # image only vs image + metadata on ISIC 2020 (600 images, 39 melanomas), plus the artefact heads
  [multimodal]="-p data_dir $ISIC20 -p backbone tf_efficientnet_lite0 -p image_size 96 -p epochs 4 -p batch_size 32
                -p lr 2e-3 -p artefact_epochs 3 -p artefact_lr 1e-3 -p n_attribution 2"
  # attention vs no-attention patch models, with and without the dx factor, HAM10000, 2 folds
  [patch_attention]="-p data_dir $HAM -p backbone tf_efficientnet_lite0 -p image_size 48 -p epochs 3 -p folds 2
                     -p max_images 500 -p batch_size 8 -p lr 2e-3 -p schedule one_cycle
                     -p attribution_methods integrated_gradients -p n_explain 2"
  # segmenter and symmetry net on PH2's masks and asymmetry labels, the diagnosis classifier on HAM10000
  [se_lcn]="-p data_dir $HAM -p sym_data_dir $PH2 -p seg_encoder tu-tf_efficientnet_lite0
            -p classifier_backbone tf_efficientnet_lite0 -p image_size 64 -p cam_size 64 -p max_images 800
            -p seg_epochs 4 -p sym_epochs 15 -p sym_lr 1e-4 -p sym_patience 0 -p sym_augment dihedral -p epochs 3
            -p lr 1e-3 -p folds 1 -p patience 0 -p batch_size 32 -p n_attribution 2"
)

for nb in "${@:-arl attention_b3 multimodal patch_attention se_lcn}"; do
  for one in $nb; do
    # shellcheck disable=SC2086
    run "$one" ${ARGS[$one]}
  done
done
"$PY" - <<'EOF'
import json
from pathlib import Path

for rj in sorted(Path("runs").glob("*/*cpu-real*/run.json")):
    info = json.loads(rj.read_text())
    metrics = json.loads((rj.parent / "metrics.json").read_text()) if (rj.parent / "metrics.json").exists() else {}
    print(rj.parent, info.get("status"), info.get("split"), json.dumps(metrics.get("summary", {}))[:400])
EOF
