#!/usr/bin/env bash
# The packages as a new user gets them: packs the four packages (pnpm pack, after `pnpm build`), installs the
# tarballs into an empty project with npm and then with pnpm (strict layout), and runs `npx lrc --help`, a tiny
# end-to-end run through `npx lrc` (tokenizer train, tokenize, pretrain a teacher, distill, eval; --backend gpu
# says to install gpu.js, an optional peer) and an ESM script that imports each package. Only the npm
# registry is needed. Usage: .ci/pack-install.sh [workdir]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work/packs"
rm -f "$work"/packs/*.tgz
for p in tensor-core data nn lrc; do (cd "$repo/packages/$p" && pnpm pack --pack-destination "$work/packs" >/dev/null); done
ls -l "$work/packs"

# A small deterministic corpus (seeded sentences over a few dozen words).
mkdir -p "$work/corpus"
node -e '
const words = "the a cat dog sat ran on under mat tree house red blue small big and then it was very quiet loud morning night river hill".split(" ");
let s = 7; const r = (n) => ((s = (s * 1103515245 + 12345) % 2147483648), s % n);
for (let f = 0; f < 4; f++) {
  const lines = [];
  for (let i = 0; i < 300; i++) lines.push(Array.from({ length: 6 + r(8) }, () => words[r(words.length)]).join(" ") + ".");
  require("fs").writeFileSync(`${process.argv[1]}/doc${f}.txt`, lines.join("\n") + "\n");
}' "$work/corpus"

cat > "$work/imports.mjs" <<'JS'
import { tensor } from "@lrc-ts/tensor-core";
import { loadTokenizer } from "@lrc-ts/data";
import { CausalLM, makeConfig } from "@lrc-ts/nn";
import { LowRankClone } from "@lrc-ts/lrc";
const cfg = makeConfig({ model_type: "qwen2", vocab_size: 32, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1 });
const teacher = new CausalLM(cfg, { seed: 1 });
const clone = new LowRankClone(teacher, { hiddenSize: 8 });
const ids = Int32Array.from({ length: 8 }, (_, i) => i);
const loss = clone.loss;
if (typeof loadTokenizer !== "function" || tensor([1, 2, 3]).sum().item() !== 6 || clone.studentConfig.hidden_size !== 8 || loss === undefined)
  throw new Error("imports: unexpected values");
console.log(`imports: the four packages load (student d=${clone.studentConfig.hidden_size}, ${ids.length} ids)`);
JS

run_user() {
  local pm=$1 proj="$work/$1"
  rm -rf "$proj"; mkdir -p "$proj"; cd "$proj"
  echo '{ "name": "try-lrc", "private": true, "type": "module" }' > package.json
  local t0; t0=$(date +%s)
  if [ "$pm" = npm ]; then
    npm install --no-audit --no-fund "$work"/packs/*.tgz
  else
    # pnpm resolves the packages' dependencies on each other (^0.1.0) from the tarballs, not the registry.
    { echo "overrides:"; for p in tensor-core data nn lrc; do echo "  '@lrc-ts/$p': file:$work/packs/lrc-ts-$p-0.1.0.tgz"; done; } > pnpm-workspace.yaml
    pnpm add "$work"/packs/*.tgz
  fi
  echo "$pm install: $(( $(date +%s) - t0 )) s, node_modules $(du -sh node_modules | cut -f1)"
  if [ -e node_modules/gpu.js ] || [ -e node_modules/.pnpm/node_modules/gpu.js ]; then echo "gpu.js was installed (it is an optional peer)" >&2; exit 1; fi
  npx lrc --help > help.txt && head -1 help.txt
  npx lrc --version
  npx lrc tokenizer train --input "$work/corpus" --vocab-size 300 --min-frequency 1 --out tok/tokenizer.json
  npx lrc tokenize --tokenizer tok/tokenizer.json --input "$work/corpus" --out shards --val-fraction 0.1
  echo '{ "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 300, "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-6,
    "rope_theta": 10000, "tie_word_embeddings": true }' > teacher-config.json
  npx lrc pretrain --config teacher-config.json --data shards --out teacher --steps 30 --batch-size 4 --seq-len 32 --tokenizer tok/tokenizer.json --no-progress
  npx lrc distill --teacher teacher/model --hidden-size 16 --data shards --out lrc --steps 10 --batch-size 4 --seq-len 32 --no-progress --json | tail -1
  for f in config.json model.safetensors tokenizer.json README.md generation_config.json; do test -s "lrc/student/$f" || { echo "lrc/student/$f missing" >&2; exit 1; }; done
  npx lrc eval --model lrc/student --data shards --json
  if npx lrc eval --model lrc/student --data shards --backend gpu 2> gpu.err; then echo "--backend gpu ran without gpu.js installed" >&2; exit 1; fi
  grep -q "npm i gpu.js@2.24.1" gpu.err || { echo "--backend gpu without gpu.js did not say what to install:" >&2; cat gpu.err >&2; exit 1; }
  cp "$work/imports.mjs" . && node imports.mjs
  echo "$pm: all steps passed in $(( $(date +%s) - t0 )) s"
}

run_user npm
run_user pnpm
