// The tape's memory behaviour: cotangents are disposed once consumed, VJP temporaries die with their VJP, and the
// aliasing cases (one cotangent object for two inputs, a tensor used twice, leaves accumulating `.grad`, targets,
// the caller's seed) keep every tensor that is still needed. Gradients must equal the analytic ones.
import { describe, expect, it } from "vitest";
import { Tensor, keep, scope, tensor } from "../tensor.js";
import { backprop, evict } from "./tape.js";
import { valueAndGrad } from "./grad.js";
import * as O from "../ops/index.js";

function close(a: ArrayLike<number>, b: ArrayLike<number>): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(a[i]!).toBeCloseTo(b[i]!, 5);
}

describe("tape: summing a tensor's cotangents in place", () => {
  const N = 1 << 16;
  const x = tensor(Float32Array.from({ length: N }, (_, i) => Math.sin(i)), [N]);
  const c = tensor(Float32Array.from({ length: N }, (_, i) => Math.cos(i)), [N]);
  // x reaches the loss four ways: directly, through a reshape (its cotangent a view), scaled, and through tanh.
  const f = (a: Tensor) => O.add(O.add(O.sum(O.mul(a, c)), O.sum(O.mul(O.reshape(a, [256, 256]), O.reshape(c, [256, 256])))),
    O.add(O.sum(O.mul(a, 3)), O.sum(O.tanh(a))));
  const want = (i: number) => 2 * Math.cos(i) + 3 + (1 - Math.tanh(Math.sin(i)) ** 2);

  it("gives the analytic gradient where cotangents meet, views included", () => {
    const [, [g]] = valueAndGrad(f)(x);
    const gb = g!.buf;
    for (const i of [0, 1, 77, N - 1]) expect(gb[i]!).toBeCloseTo(want(i), 4);
  });

  it("adds into the first cotangent instead of making a new sum at each meeting", () => {
    const xg = tensor(x.buf.slice(), [N], { requiresGrad: true });
    let sums = 0;
    const count = (a: Tensor, b: Tensor) => (sums++, O.add(a, b));
    const [g] = backprop(f(xg), tensor(1), [xg], false, count, keep);
    expect(sums).toBe(0);
    for (const i of [0, 5, N - 1]) expect(g!.buf[i]!).toBeCloseTo(want(i), 4);
  });
});

describe("tape: freeing cotangents", () => {
  it("gives correct gradients when one cotangent object feeds two inputs (x + x, add's shared dy)", () => {
    const x = tensor([1, 2, 3], [3]);
    const [, [g]] = valueAndGrad((a: Tensor) => O.sum(O.mul(O.add(a, a), O.add(a, 1))))(x);
    // d/da sum(2a (a + 1)) = 4a + 2
    close(g!.buf, [6, 10, 14]);
  });

  it("keeps a cotangent shared by a leaf .grad and a pending intermediate", () => {
    scope(() => {
      const w = tensor([1, -2, 3], [3], { requiresGrad: true });
      // y = w + w*w: add's VJP hands the same dy to w (leaf) and to w*w (intermediate)
      const y = O.add(w, O.mul(w, w));
      O.sum(O.mul(y, y)).backward();
      const wv = [1, -2, 3];
      close(w.grad!.buf, wv.map((v) => 2 * (v + v * v) * (1 + 2 * v)));
      expect(w.grad!.disposed).toBe(false);
    });
  });

  it("accumulates .grad over two backward calls and never disposes the caller's seed", () => {
    const w = tensor([0.5, 1.5], [2], { requiresGrad: true });
    const seed = tensor([1, 2], [2]);
    const y = O.mul(O.exp(w), 3);
    y.backward(seed);
    y.backward(seed);
    expect(seed.disposed).toBe(false);
    close(w.grad!.buf, [0.5, 1.5].map((v, i) => 2 * (i + 1) * 3 * Math.exp(v)));
    expect(y.disposed).toBe(false);
  });

  it("returns target gradients intact when a target's cotangent is shared", () => {
    const a = tensor([1, 2], [2]), b = tensor([3, 4], [2]);
    const [, [ga, gb]] = valueAndGrad((x: Tensor, y: Tensor) => O.sum(O.add(x, y)))(a, b);
    expect(ga!.disposed).toBe(false);
    expect(gb!.disposed).toBe(false);
    close(ga!.buf, [1, 1]);
    close(gb!.buf, [1, 1]);
  });

  it("disposes every consumed cotangent by the end of the pass (only the seed and the results survive)", () => {
    const x = tensor(new Float32Array(64).fill(0.5), [64]);
    const depth = 12;
    const seen: Tensor[] = [];
    scope(() => {
      const [, [g]] = valueAndGrad((a: Tensor) => {
        let h = a;
        for (let i = 0; i < depth; i++) h = O.tanh(O.add(O.mul(h, 1.01), h));
        const loss = O.sum(h);
        const visited = new Set<Tensor>();
        const stack: Tensor[] = [loss];
        while (stack.length > 0) {
          const t = stack.pop()!;
          if (visited.has(t) || t.node === null) continue;
          visited.add(t);
          const node = t.node;
          const inner = node.vjp;
          t.node = { op: node.op, inputs: node.inputs, vjp: (dy, into) => (seen.push(dy), inner(dy, into)) };
          stack.push(...node.inputs);
        }
        return loss;
      })(x);
      expect(g!.disposed).toBe(false);
      expect(seen.length).toBeGreaterThan(3 * depth);
      // the seed (made before the pass) is the only cotangent left alive
      expect(seen.filter((t) => !t.disposed).length).toBe(1);
    });
  });
});

describe("tape: evict", () => {
  // loss = sum(tanh(x W^T) * c) with W = A P generated from a frozen A: W is evicted after its use, as LRC
  // evicts a layer's generated weights, and recomputed for the matmul's VJP (dx needs W).
  const r = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * s + 1));
  const A = tensor(r(6 * 5, 0.7), [6, 5]);
  const c = tensor(r(4 * 6, 0.3), [4, 6]);
  const run = (evictW: boolean) => {
    const P = tensor(r(5 * 3, 1.3), [5, 3], { requiresGrad: true });
    const x = tensor(r(4 * 3, 0.9), [4, 3], { requiresGrad: true });
    let recomputed = 0;
    const W = O.matmul(A, P); // (6, 3)
    const y = O.tanh(O.matmul(x, W, { transB: true })); // (4, 6)
    if (evictW)
      evict(W, () => {
        recomputed++;
        return O.matmul(A, P);
      });
    const evictedAfterForward = W.disposed;
    O.sum(O.mul(y, c)).backward();
    return { gx: x.grad!.data(), gP: P.grad!.data(), recomputed, evictedAfterForward, evictedAfterBackward: W.disposed, W };
  };

  it("gives bit-identical gradients, recomputing the tensor once for the VJP that reads it and freeing it again", () => {
    const plain = run(false), ev = run(true);
    expect(Array.from(ev.gx)).toEqual(Array.from(plain.gx));
    expect(Array.from(ev.gP)).toEqual(Array.from(plain.gP));
    expect(plain.evictedAfterForward).toBe(false);
    expect([ev.evictedAfterForward, ev.recomputed, ev.evictedAfterBackward]).toEqual([true, 1, true]);
  });

  it("fails any other read of an evicted tensor as for a disposed one, and checks what recompute gives", () => {
    const { W } = run(true);
    expect(() => W.data()).toThrow(/was disposed/);
    const x = tensor([1, 2], [2], { requiresGrad: true });
    const y = O.mul(x, 2);
    const z = O.sum(O.mul(y, y)); // mul's VJP reads its input y
    evict(y, () => tensor([1, 2, 3], [3]));
    expect(() => z.backward()).toThrow(/evict: recompute gave float32\[3\] for float32\[2\]/);
  });

  it("without recompute drops the values for good: exact where no VJP reads them (rope's input), a disposed read where one does", () => {
    // rotate-half tables of 4 positions, head dim 6: angle pos · θ_j, j = column mod 3
    const angle = (i: number) => Math.floor(i / 6) * 0.7 ** (i % 3);
    const cos = tensor(Float32Array.from({ length: 24 }, (_, i) => Math.cos(angle(i))), [4, 6]);
    const sin = tensor(Float32Array.from({ length: 24 }, (_, i) => Math.sin(angle(i))), [4, 6]);
    const grads = (drop: boolean) => {
      const x = tensor(r(2 * 4 * 6, 0.5), [2, 4, 6], { requiresGrad: true });
      const h = O.permute(O.mul(x, 3), [0, 1, 2]); // a copy: rope's input, read by no VJP
      const y = O.rope(h, cos, sin);
      if (drop) evict(h);
      expect(h.disposed).toBe(drop);
      O.sum(O.mul(O.tanh(y), c.data()[0]!)).backward();
      return Array.from(x.grad!.data());
    };
    expect(grads(true)).toEqual(grads(false));
    const x = tensor([1, 2], [2], { requiresGrad: true });
    const y = O.mul(x, 2);
    const z = O.sum(O.mul(y, y));
    evict(y);
    expect(() => z.backward()).toThrow(/was disposed/);
  });
});
