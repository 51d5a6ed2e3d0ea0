#!/usr/bin/env bash
# Mesa 25's lavapipe (the Vulkan software rasteriser) and the Vulkan loader from Debian bookworm-backports,
# unpacked into a private directory: no package is installed and the system's Mesa is left as it is. Dawn
# (the `webgpu` package) needs it for a WebGPU adapter here: it rejects Debian 12's own Mesa 22 lavapipe
# ("Vulkan shaderUniform*ArrayDynamicIndexing required").
#
#   eval "$(bash .ci/lavapipe.sh [DIR])"    # default DIR: ./.lavapipe; prints the two exports to apply
#
# Needs apt-get, dpkg-deb and debian-archive-keyring (all on Debian 12) and deb.debian.org; no root.
set -euo pipefail
D=$(realpath -m "${1:-$PWD/.lavapipe}")
MESA_VERSION=${LAVAPIPE_MESA_VERSION:-25.0.7-2~bpo12+1}
mkdir -p "$D/apt/lists/partial" "$D/apt/cache/archives/partial" "$D/debs" "$D/root"
cat > "$D/apt/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main
SRC
cat > "$D/apt/apt.conf" <<CONF
Dir::Etc::SourceList "$D/apt/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::State::Lists "$D/apt/lists";
Dir::Cache "$D/apt/cache";
Dir::State::status "/dev/null";
CONF
export APT_CONFIG="$D/apt/apt.conf"
apt-get -q update >&2
cd "$D/debs"
rm -f ./*.deb
# The tested version; when backports has moved on, its current one (checked below by loading it).
if ! apt-get -q download "mesa-vulkan-drivers=$MESA_VERSION" >&2; then
  echo "lavapipe.sh: mesa-vulkan-drivers $MESA_VERSION is gone from bookworm-backports; taking its current version" >&2
  apt-get -q download -t bookworm-backports mesa-vulkan-drivers >&2
fi
apt-get -q download libvulkan1 >&2
for f in ./*.deb; do dpkg-deb -x "$f" "$D/root"; done
LIB="$D/root/usr/lib/x86_64-linux-gnu"
[ -f "$LIB/libvulkan_lvp.so" ] || { echo "lavapipe.sh: no libvulkan_lvp.so in the unpacked packages" >&2; exit 1; }
missing=$(LD_LIBRARY_PATH="$LIB" ldd "$LIB/libvulkan_lvp.so" | grep "not found" || true)
[ -z "$missing" ] || { echo "lavapipe.sh: libvulkan_lvp.so needs libraries this system lacks:" >&2; echo "$missing" >&2; exit 1; }
sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$LIB/libvulkan_lvp.so\"#" \
  "$D/root/usr/share/vulkan/icd.d/lvp_icd.json" > "$D/lvp_icd.json"
echo "lavapipe.sh: $(ls "$D/debs" | tr '\n' ' ')unpacked in $D" >&2
echo "export VK_ICD_FILENAMES=$D/lvp_icd.json"
echo "export LD_LIBRARY_PATH=$LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
