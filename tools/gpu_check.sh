#!/usr/bin/env bash
# The course's GPU check, for a machine with CUDA and PyTorch already installed (no network needed): the CUDA
# transfer tests, the transfer modes, and tools/gpu_measure.py (workers 0-16, decode-bound JPEG, a GPU step fed).
#   tools/gpu_check.sh [OUT_DIR]     (wheels for packages the machine lacks may sit in .whl/)
set -euo pipefail   # any failing step (pytest included) fails the check
out=${1:-build/gpu}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; } | tee "$out/gpu.txt"
python3 -c "import torch, numpy, webdataset; print('torch', torch.__version__, 'numpy', numpy.__version__, 'webdataset', webdataset.__version__)" | tee -a "$out/gpu.txt"
# pytest's own status, not tail's or tee's: the whole log is kept, its tail shown; a GPU test failing fails the check
status=0
timeout 300 python3 -m pytest -q -p no:cacheprovider -o addopts="-ra" tests/test_device_transfer.py \
  > "$out/pytest.txt" 2>&1 || status=$?
tail -5 "$out/pytest.txt"
if [ "$status" -ne 0 ]; then echo "gpu_check: GPU tests failed (pytest exit status $status)" >&2; exit "$status"; fi
python3 -m data_gen generate --out /tmp/gpu-data --samples 40000 --formats npy --no-progress 2>&1 | tail -1
for bs in 256 1024; do
  python3 -m course_lib.measure.transfer_modes --data-dir /tmp/gpu-data --repeat 5 --batch-size $bs | tee -a "$out/transfer.jsonl"
done
python3 tools/gpu_measure.py "$out" /tmp/gpu-data
python3 -c "from course_lib.course.verification import backend; print('backend:', backend())" | tee -a "$out/gpu.txt"
