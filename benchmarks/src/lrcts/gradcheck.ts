// The cost of one gradient property check (tensor-core's checkGrad: one VJP against central finite
// differences along a random direction) on a small float64 attention block, the unit the property tests
// repeat many times.

import { add, causalAttention, matmul, permute, randn, reshape, rng, scope } from "@lrc-ts/tensor-core";
import type { Tensor } from "@lrc-ts/tensor-core";
import { checkGrad } from "@lrc-ts/tensor-core/testing";
import type { CaseSpec } from "../cases.js";
import type { Prepared } from "../impl.js";

/** x + Wo · attention(x Wq, x Wk, x Wv): x [B, T, D]; H query heads, Hkv kv heads of width D / H. */
export function attentionBlock(B: number, T: number, H: number, Hkv: number) {
  return (x: Tensor, wq: Tensor, wk: Tensor, wv: Tensor, wo: Tensor): Tensor => {
    const D = x.shape[2]!, dh = D / H;
    const heads = (w: Tensor, n: number): Tensor => permute(reshape(matmul(x, w), [B, T, n, dh]), [0, 2, 1, 3]);
    const o = causalAttention(heads(wq, H), heads(wk, Hkv), heads(wv, Hkv));
    return add(x, matmul(reshape(permute(o, [0, 2, 1, 3]), [B, T, H * dh]), wo));
  };
}

export function prepareGradCheck(spec: Extract<CaseSpec, { kind: "gradCheck" }>): Prepared {
  const { B, T, D, H, Hkv } = spec;
  const dh = D / H;
  const r = rng(3);
  const opts = { rng: r, dtype: "float64" as const };
  const xs = [
    randn([B, T, D], opts),
    randn([D, H * dh], { ...opts, std: 0.3 }),
    randn([D, Hkv * dh], { ...opts, std: 0.3 }),
    randn([D, Hkv * dh], { ...opts, std: 0.3 }),
    randn([H * dh, D], { ...opts, std: 0.3 }),
  ];
  const f = attentionBlock(B, T, H, Hkv);
  const dirs = rng(11);
  return {
    run: () =>
      scope(() => {
        const res = checkGrad((...a: Tensor[]) => f(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!), xs, dirs);
        if (!res.ok) throw new Error(`checkGrad failed: analytic ${res.analytic} vs numeric ${res.numeric}`);
      }),
    dispose: () => xs.forEach((t) => t.dispose()),
  };
}
