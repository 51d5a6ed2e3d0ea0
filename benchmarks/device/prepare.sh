#!/usr/bin/env bash
# Builds .device-bench/ (git-ignored) for run.sh on a GPU machine that has no Node and no package registry:
#   node.xz                 this machine's node binary, xz-compressed (Node 20, linux-x64)
#   bench.mjs               benchmarks/device/entry.ts bundled with tensor-core and the `webgpu` package's JS
#   dist/linux-x64/dawn.node  the `webgpu` package's Dawn addon, where the bundled package looks for it
#   libvulkan1.deb          the Vulkan loader (Debian bookworm), unpacked by run.sh when the machine lacks one
# and checks the whole stays within 64 MiB (what a device call carries). Run from the repository root:
#   bash benchmarks/device/prepare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
D=.device-bench
rm -rf "$D"
mkdir -p "$D/dist/linux-x64"
[ "$(uname -m)" = "x86_64" ] || { echo "prepare.sh: needs x86-64 (the GPU machine's node and dawn.node are linux-x64)" >&2; exit 1; }
xz -9 -T0 -c "$(readlink -f "$(command -v node)")" > "$D/node.xz"
dawn=$(node -e "const p=require('path');console.log(p.join(p.dirname(require.resolve('webgpu/package.json',{paths:['packages/tensor-core']})),'dist','linux-x64','dawn.node'))")
cp "$dawn" "$D/dist/linux-x64/dawn.node"
esbuild=$(node -e "console.log(require.resolve('esbuild/bin/esbuild',{paths:[require('path').dirname(require.resolve('tsx/package.json'))]}))")
# The source condition resolves tensor-core to its TypeScript; `webgpu` (ESM, loads dawn.node by a path
# relative to itself) is bundled too, so dawn.node sits at dist/linux-x64/ beside bench.mjs.
"$esbuild" benchmarks/device/entry.ts --bundle --platform=node --format=esm --target=node20 --conditions=source \
  --outfile="$D/bench.mjs" --log-level=warning \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" \
  --alias:webgpu="$(dirname "$(dirname "$(dirname "$dawn")")")/index.js"
(cd "$D" && apt-get -qq download libvulkan1 >/dev/null 2>&1 && mv libvulkan1_*.deb libvulkan1.deb) \
  || echo "prepare.sh: apt-get download libvulkan1 failed; run.sh will rely on the machine's Vulkan loader" >&2
grep -qx '/.device-bench/' .git/info/exclude 2>/dev/null || echo '/.device-bench/' >> "$(git rev-parse --git-common-dir)/info/exclude"
size=$(du -sb "$D" | cut -f1)
echo "prepare.sh: $D is $((size / 1048576)) MiB: $(ls "$D" | tr '\n' ' ')"
[ "$size" -le $((64 * 1048576)) ] || { echo "prepare.sh: $D is over 64 MiB" >&2; exit 1; }
