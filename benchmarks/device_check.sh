#!/usr/bin/env bash
# The GPU proof of benchbase, in one go, on a machine with one NVIDIA GPU and no network
# (about 5 minutes on an H100; the budget is 8):
#
#   1. install the wheels carried in benchmarks/wheels/ and benchbase itself into a private
#      folder (the machine has PyTorch, JAX, Flax and optax with CUDA; benchmarks/README.md
#      says how to prepare the wheels);
#   2. the tests marked `gpu` (placement, data on the device, no host sync per step, the
#      process executor's gpus, Ray's num_gpus, fleets on the GPU);
#   3. the loop-overhead benchmark on CUDA, PyTorch and JAX (benchbase's loop / a bare loop);
#   4. the metric kernels on CUDA: kNN as a fraction of the device's own GEMM rate, FD, SWD;
#   5. the fleet benchmark: training throughput of a 64-member fleet / one run (target >= 20);
#   6. a short U-Net rectified flow on calpha_images at 32x32 through `benchbase run`, and
#      its leaderboard row (fd, swd, mem_ratio against its chance level);
#
# then one summary table. `--dry-run` runs the same steps on the CPU at toy size with the
# Python already installed (no wheels): the slow tests run it (tests/test_device_check.py).
#
#   bash benchmarks/device_check.sh [--dry-run]
#
# Environment: PYTHON (default python3), DEVICE_CHECK_OUT (logs; default a fresh temp dir),
# DEVICE_CHECK_BUDGET (seconds for all steps together, default 480: a step gets its own limit
# or what is left of the budget, whichever is less, so the summary is printed even when a
# step hangs inside a device call's time limit).
set -uo pipefail

DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${PYTHON:-python3}"
OUT="${DEVICE_CHECK_OUT:-$(mktemp -d /tmp/device-check.XXXXXX)}"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.tsv"
: > "$SUMMARY"
cd "$ROOT" || exit 1
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg

if [[ $DRY == 1 ]]; then
    DEVICE=cpu
    LOOP=(--steps 20 --repeats 3)
    METRICS=(--repeats 1 --knn-query 400 --knn-ref 2000 --knn-dim 64 --fd-dim 64 --fd-samples 300
             --swd-points 300 --swd-dim 64 --swd-projections 20)
    FLEET=(--throughput 4 --steps 30 --samples 50)
    UNET_SIZE=16 UNET_STEPS=6 UNET_N=64 UNET_SAMPLES=16
    SLACK=6  # a CPU (often shared) compiles and trains slowly: each step may take longer
else
    DEVICE=cuda
    LOOP=(--steps 1000 --repeats 9)  # JAX runs about 2,000 steps/s there: 300 steps made 0.15 s repeats whose
    # median moved by 0.05 between runs (docs/performance.md); 1000 cost about 40 s more, mostly PyTorch's
    METRICS=(--repeats 2 --fd-dim 1024)
    FLEET=(--throughput 64 --steps 1500 --samples 100)
    UNET_SIZE=32 UNET_STEPS=400 UNET_N=2000 UNET_SAMPLES=256
    SLACK=1  # the GPU run's steps fit in 8 minutes together
fi

# ------------------------------------------------------------------------------ setup
started=$(date +%s)
if [[ $DRY == 0 ]]; then
    SITE=/tmp/benchbase-site
    shopt -s nullglob
    wheels=("$HERE"/wheels/*.whl)
    if (( ${#wheels[@]} == 0 )); then
        echo "no wheels in $HERE/wheels: prepare them as benchmarks/README.md says" >&2
        exit 2
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "${wheels[@]}" || exit 2
    rm -rf /tmp/benchbase-wheel
    "$PY" -m pip wheel -q --no-deps --no-build-isolation --no-index -w /tmp/benchbase-wheel "$ROOT" || exit 2
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" \
        /tmp/benchbase-wheel/benchbase-*.whl || exit 2
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
fi
GPU_NAME="$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (CPU)")' 2>/dev/null)"
"$PY" - > "$OUT/versions.txt" 2>&1 <<'EOF'
import importlib.metadata as md
for dist in ("benchbase", "torch", "jax", "jaxlib", "flax", "optax", "numpy", "omegaconf", "pot", "ray"):
    try:
        print(f"{dist} {md.version(dist)}")
    except md.PackageNotFoundError:
        print(f"{dist} -")
EOF

BUDGET=${DEVICE_CHECK_BUDGET:-480}
deadline=$(( $(date +%s) + BUDGET ))

# step NAME TIMEOUT FIGURE-PATTERN COMMAND...: runs COMMAND, logs it, records one summary row.
step() {
    local name=$1 limit=$(( $2 * SLACK )) pattern=$3
    shift 3
    local log="$OUT/$name.log" t0 rc status figure left
    t0=$(date +%s)
    left=$(( deadline - t0 ))
    if (( left < 10 )); then
        printf '%s\t%s\t%s\t%s\n' "$name" "NOT RUN (budget of ${BUDGET}s spent)" 0 - >> "$SUMMARY"
        return
    fi
    (( limit > left )) && limit=$left
    echo "== $name: $*" | tee "$log"
    timeout "$limit" "$@" >> "$log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124) status="TIMEOUT ${limit}s" ;;
        *) status="FAILED ($rc)" ;;
    esac
    figure=$(grep -E "$pattern" "$log" | tail -n 2 | tr '\n' ' ' | sed 's/  */ /g; s/ $//')
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - t0 ))" "${figure:--}" >> "$SUMMARY"
    tail -n 3 "$log"
}

# ------------------------------------------------------------------------------ steps
step gpu-tests 240 "passed|failed|skipped|error" \
    "$PY" -m pytest -q -p no:randomly -p no:cacheprovider -m gpu -rs tests/test_gpu.py

step loop-overhead 150 "^ratios of medians" \
    "$PY" benchmarks/bench_loop_overhead.py torch jax --device "$DEVICE" --torch-threads 1 "${LOOP[@]}"

step metric-kernels 150 "RATIO|^summary" \
    "$PY" benchmarks/bench_metrics.py --device "$DEVICE" "${METRICS[@]}"

step fleet-throughput 150 "^throughput ratios" \
    "$PY" benchmarks/bench_fleet.py torch jax --device "$DEVICE" "${FLEET[@]}"

UNET="$OUT/unet_calpha.yaml"
cat > "$UNET" <<EOF
name: device_check_unet
seeds: [0]
device: $DEVICE
datasets:
  - name: calpha_images
    n: $UNET_N
    config: {size: $UNET_SIZE, train_size: $UNET_N, test_size: 500}
models:
  - name: rectified_flow
    framework: torch
    config: {backbone: unet, sample_steps: 20}
metrics: [fd, swd, mem_ratio]
budget: {batch_size: 64, steps: $UNET_STEPS}
eval: {points: 2, n_samples: $UNET_SAMPLES}
EOF
step unet-calpha 180 "suite 'device_check_unet'" \
    "$PY" -m benchbase.cli run "$UNET" --results "$OUT/unet-results" --quiet
step unet-scores 30 "^\| 1 " \
    "$PY" -m benchbase.cli leaderboard --results "$OUT/unet-results" --suite device_check_unet

# ---------------------------------------------------------------------------- summary
echo
echo "device check ($([[ $DRY == 1 ]] && echo 'dry run, CPU, toy sizes' || echo "$GPU_NAME")), $(( $(date +%s) - started )) s, logs in $OUT"
printf '%-18s %-14s %6s  %s\n' step status sec "key figures"
failed=0
while IFS=$'\t' read -r name status secs figure; do
    printf '%-18s %-14s %6s  %s\n' "$name" "$status" "$secs" "$figure"
    [[ $status == ok ]] || failed=1
done < "$SUMMARY"
exit $failed
