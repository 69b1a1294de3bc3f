#!/usr/bin/env bash
# Every GPU check in one short script (about 8 minutes on one H100), for a machine lent for
# minutes: the CUDA tests, the steps as CUDA graphs (gpu_graph.py), the speed table on the
# GPU (reference loop vs gankit), the dcgan preset in fp32/bf16/fp16, the default `gankit train`
# on the GPU, then the whole suite with CUDA present. The sections' time limits add up to 18
# minutes: where one command may run 10, run the sections in two or more calls (`graph` alone
# takes about 4 minutes).
# Runs from the repository root against src/ (no install needed: torch, numpy, safetensors,
# pillow, matplotlib, scipy, pytest and hypothesis must be importable; pytest-xdist for the
# `suite` section) with the machine's own CUDA build of torch (not a CPU-only venv carried
# over: the script stops at once where torch sees no GPU). Logs go to $OUT (or ./gpu-out), the
# tables to stdout.
#
#     bash benchmarks/gpu_suite.sh                 # everything
#     bash benchmarks/gpu_suite.sh tests suite     # some sections: machine tests graph train
#                                                  # speed precision suite
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src:$PWD/benchmarks PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
PY=${PYTHON:-python3}

SECTIONS=${*:-machine tests graph train speed precision suite}
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_suite.sh: $PY has no torch that sees a CUDA device; nothing to run" >&2
    exit 2
fi
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
section() { echo; echo "=== $1 ($(date -u +%T))"; }

if want machine; then
    section "machine"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
    $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
    torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())"
fi

if want tests; then
    section "CUDA tests"
    timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_devices.py 2>&1 | tail -n 15
fi

if want graph; then
    section "steps as CUDA graphs (generic / eager / graphed, and their agreement)"
    timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_graphed.py -k cuda 2>&1 | tail -n 15
    timeout 240 $PY benchmarks/gpu_graph.py --repeats 3 --seconds 1 \
        --cases seed:128 seed:512 classic:128 digits:64 dcgan:64 dcgan:128 2>&1 \
        | tee "$OUT/gpu_graph.txt"
fi

if want train; then
    section "default gankit train on the GPU (the digits preset, 10,000 steps)"
    start=$(date +%s%N)
    timeout 120 $PY -m gankit train --devices cuda --out /tmp/gpu-run --quiet 2>&1 | tail -n 8
    echo "wall $(( ($(date +%s%N) - start) / 1000000 )) ms (start-up included)"
    last=$(ls /tmp/gpu-run/samples/*.png 2>/dev/null | tail -n 1)
    [ -n "$last" ] && cp "$last" "$OUT/gpu_default_run.png"
    timeout 60 $PY -m gankit eval /tmp/gpu-run 2>&1 | tail -n 12
fi

if want speed; then
    section "speed table on the GPU"
    timeout 150 $PY benchmarks/speed.py --device cuda --repeats 3 --seconds 2 \
        --cases seed:128 classic:128 classic:512 dcgan:64 dcgan:128 2>&1 | tee "$OUT/speed_gpu.txt"
fi

if want precision; then
    section "dcgan preset by precision"
    timeout 90 $PY benchmarks/gpu_dcgan.py --seconds 4 --repeats 3 2>&1 | tee "$OUT/gpu_dcgan.txt"
fi

if want suite; then
    section "whole test suite with CUDA present"
    timeout 200 $PY -m pytest -q -p no:cacheprovider -n 6 tests > "$OUT/suite.txt" 2>&1
    tail -n 40 "$OUT/suite.txt"
fi
