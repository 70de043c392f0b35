#!/usr/bin/env bash
# Each chapter's key experiment from its paper, as one `cnnlib sweep train` (issue: "each chapter
# re-runs its paper's key experiment"). Laptop scale by default: a CIFAR-10 subset, a few epochs,
# 3 seeds, two runs at a time on two CPU cores; every sweep was sized to finish in under 20 minutes
# on an idle 2-core CPU. Nothing else may run beside it when its time is reported.
#
#   bash benchmarks/ablations.sh 06_resnet            # one chapter
#   bash benchmarks/ablations.sh all                  # the eight, one after another
#   SUBSET=50000 EPOCHS=... JOBS=1 bash benchmarks/ablations.sh 06_resnet   # at full scale, e.g. on a GPU
#
# Runs (checkpoints) go to runs/ablations/<chapter>/; results.csv and histories.csv are copied to
# results/ablations/<chapter>/, which the chapter's page reads. Rerunning resumes a cut-off sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-3}

sweep() {  # sweep CHAPTER SUBSET EPOCHS ARGS...: one sweep, timed, results copied to results/ablations/CHAPTER
  local chapter=$1 subset=$2 epochs=$3; shift 3
  local out=runs/ablations/$chapter
  local started=$SECONDS
  "$PYTHON" -m cnnlib sweep train --out "$out" --repeats "$SEEDS" --jobs "$JOBS" \
    --param dataset=cifar10 --param subset="${SUBSET:-$subset}" --param epochs="${EPOCHS:-$epochs}" \
    --param eval_every="${EPOCHS:-$epochs}" --param tta=none "$@"
  mkdir -p "results/ablations/$chapter"
  cp "$out/results.csv" "$out/histories.csv" "results/ablations/$chapter/"
  echo "$chapter: $((SECONDS - started)) s on $(nproc) cores, $JOBS runs at a time" \
    | tee "results/ablations/$chapter/wall_seconds.txt"
}

run() {
  case $1 in
    # Krizhevsky et al. 2012, §3.1, Fig. 1: ReLU against tanh, epochs to 25 % training error. No
    # augmentation, label smoothing or weight decay, as in Fig. 1 (the network's own dropout stays);
    # each activation from Glorot's initialisation (made for tanh) and He's (made for ReLU); one
    # constant learning rate for all.
    02_alexnet) sweep 02_alexnet 5000 24 --param model=alexnet --grid option.activation=relu,tanh \
      --grid option.init=xavier,kaiming --param option.width_mult=0.25 --param augment=none \
      --param label_smoothing=0 --param weight_decay=0 --param schedule=none --param lr=0.02 --param batch_size=128 ;;
    # Lin et al. 2014, §4.6, Table 5: global average pooling against a fully connected head (with
    # dropout) on the same mlpconv body; the chapter's half-width CIFAR network and recipe, from He's
    # initialisation (the chapter's) and from Glorot's.
    03_nin) sweep 03_nin 10000 6 --param model=nin --grid option.head=gap,fc --grid option.init=kaiming,xavier \
      --param option.width_mult=0.5 --param batch_size=128 --param lr=0.05 ;;
    # Simonyan & Zisserman 2015, Table 3: configurations A, B, D (11, 13, 16 layers) with batch norm,
    # and D without it; all at quarter width with He initialisation, so only depth and batch norm differ.
    04_vgg) sweep 04_vgg 5000 8 --grid model=vgg11_bn,vgg13_bn,vgg16_bn,vgg16 --param option.width_mult=0.25 \
      --param option.init=kaiming --param batch_size=128 --param lr=0.05 ;;
    # Szegedy et al. 2015, §5: the two auxiliary classifiers (loss weight 0.3) on and off; the
    # chapter's paper-form network at quarter width, fp32 (chosen when bf16 was no faster for it on a CPU, before
    # cnnlib's ResponseNorm made it 1.5 times faster: book/performance.md).
    05_googlenet) sweep 05_googlenet 5000 8 --param model=googlenet --grid option.aux_logits=true,false --param option.width_mult=0.25 \
      --param option.variant=paper --param amp=false --param batch_size=128 --param lr=0.05 ;;
    # He et al. 2016, §4.2, Fig. 6: the paper's CIFAR networks (16/32/64 channels, option A
    # shortcuts) at 20 and 56 layers, with and without the shortcuts.
    06_resnet) sweep 06_resnet 4000 8 --grid model=resnet20,plain20,resnet56,plain56 --param batch_size=128 ;;
    # Huang et al. 2017, Table 2: the growth rate k at a fixed depth. In DenseNet-121 every width is a
    # multiple of k (stem 2k, bottlenecks 4k, transitions halve), so width_mult = k / 32:
    # k = 8, 12, 16. The chapter's small-input form with the stem's stride 2.
    07_densenet) sweep 07_densenet 4000 5 --param model=densenet121 --grid option.width_mult=0.25,0.375,0.5 --param option.stem_stride=2 \
      --param batch_size=128 --param lr=0.1 ;;
    # Sandler et al. 2018, §6.4, Fig. 6a: the linear bottleneck against ReLU6 after the projection;
    # the chapter's half-width network, fp32 (bf16 is no faster for it on a CPU).
    08_mobilenet) sweep 08_mobilenet 4000 5 --param model=mobilenet_v2 --grid option.linear_bottleneck=true,false \
      --param option.width_mult=0.5 --param amp=false --param batch_size=128 --param lr=0.1 ;;
    # Tan & Le 2019, Sec. 4, after Hu et al. 2018, Table 2: every MBConv unit with its squeeze-and-
    # excitation gate (se_ratio 0.25, the paper's) and without it; the chapter's half-width network with
    # the stem's stride 2, without dropout or stochastic depth, fp32. Not yet run, so not yet timed.
    09_efficientnet) sweep 09_efficientnet 4000 5 --param model=efficientnet_b0 --grid option.se_ratio=0.25,0.0 \
      --param option.width_mult=0.5 --param option.stem_stride=2 --param option.dropout=0 \
      --param option.stochastic_depth=0 --param amp=false --param batch_size=128 --param lr=0.1 ;;
    *) echo "unknown chapter $1" >&2; exit 2 ;;
  esac
}

if [[ ${1:-all} == all ]]; then
  for chapter in 02_alexnet 03_nin 04_vgg 05_googlenet 06_resnet 07_densenet 08_mobilenet 09_efficientnet; do
    run "$chapter"
  done
else
  for chapter in "$@"; do run "$chapter"; done
fi
