#!/usr/bin/env bash
# The webgpu backend on a real GPU (an NVIDIA H100 with Vulkan, no Node, no registry): run
# benchmarks/device/prepare.sh here first, then on the GPU machine, from the repository root with
# .device-bench carried:
#   bash benchmarks/device/run.sh [OUT_DIR]
# It unpacks node and (when the machine has none) the Vulkan loader, runs the bundled benchmark (matmul 1024^3,
# 2048^3, 4096^3 in three transpose variants and with a frozen bfloat16 operand, attention forward and
# forward + backward at Qwen2.5-0.5B's head shape, softmax-CE and RMSNorm with the optional WebGPU features
# (subgroups) on and off) on the webgpu backend, then the same matmuls in PyTorch fp32 with TF32 off (and bf16
# weights widened to fp32 for the bf16 rows), and writes both JSON files and the log to OUT_DIR (default $OUT,
# else ./device-out).
set -euo pipefail
cd "$(dirname "$0")/../.."
D=$PWD/.device-bench
O=${1:-${OUT:-$PWD/device-out}}
mkdir -p "$O"
[ -f "$D/bench.mjs" ] || { echo "run.sh: $D/bench.mjs is missing: run benchmarks/device/prepare.sh first and carry .device-bench" >&2; exit 1; }
xz -dc "$D/node.xz" > /tmp/node && chmod +x /tmp/node
if ! ldconfig -p | grep -q libvulkan.so.1; then
  [ -f "$D/libvulkan1.deb" ] || { echo "run.sh: no Vulkan loader on this machine and none carried" >&2; exit 1; }
  mkdir -p /tmp/vk && dpkg -x "$D/libvulkan1.deb" /tmp/vk
  export LD_LIBRARY_PATH=/tmp/vk/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
# NVIDIA's Vulkan ICD where the container puts it (see /work/.library/device/README.md).
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$icd" ] && { export VK_DRIVER_FILES=$icd; break; }
done
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader 2>&1 | tee "$O/gpu.txt" || true
/tmp/node --version
(cd "$D" && /tmp/node bench.mjs "$O/webgpu.json") 2>&1 | tee "$O/webgpu.log"
PYTHONUNBUFFERED=1 python3 - "$O/torch.json" <<'PY' 2>&1 | tee "$O/torch.log"
import json, sys, torch
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device("cuda")
rows = []
def timed(name, n, f):
    # one warm-up call, then the median of 5 CUDA-event timings
    f(); torch.cuda.synchronize()
    ts = []
    for _ in range(5):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); f(); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e))
    ms = sorted(ts)[2]
    row = {"case": name, "ms": ms, "gflops": 2 * n**3 / ms / 1e6, "torch": torch.__version__}
    rows.append(row); print(json.dumps(row))
for n in (1024, 2048, 4096):
    a = torch.randn(n, n, device=dev); b = torch.randn(n, n, device=dev)
    for ta, tb in ((False, False), (True, False), (False, True)):
        timed(f"matmul {n}^3 {'T' if ta else 'N'}{'T' if tb else 'N'}", n, lambda: (a.t() if ta else a) @ (b.t() if tb else b))
    # the bf16-weight rows: the frozen weight held in bf16, widened to fp32 in each call, then the fp32 product
    a16, b16 = a.bfloat16(), b.bfloat16()
    timed(f"matmul {n}^3 NT bf16 B", n, lambda: a @ b16.float().t())
    timed(f"matmul {n}^3 TN bf16 A", n, lambda: a16.float().t() @ b)
json.dump({"torch_fp32_tf32_off": rows}, open(sys.argv[1], "w"), indent=1)
PY
echo "run.sh: results in $O"
