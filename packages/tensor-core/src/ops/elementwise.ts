// Elementwise ops. Each family is a typed table `{ [op]: { vjp } }`, so an op without a gradient rule
// (or an explicit `null` for non-differentiable ones) fails to type-check. Broadcasting follows numpy;
// `unbroadcast` sums a cotangent back to an input's shape.

import { isFloat, resultDType } from "../dtype.js";
import { record } from "../autodiff/tape.js";
import { dispatch } from "../backend/dispatch.js";
import type { BinaryOp, UnaryOp } from "../backend/kernels.js";
import { broadcastShapes, shapeEq } from "../shape.js";
import { Tensor, full } from "../tensor.js";
import { broadcastTo } from "./movement.js";
import { sumTo } from "./reduce.js";

/** dy, x, y = f(x) -> dx. Each line carries the derivative it implements. */
const unaryVjps: { [K in UnaryOp]: ((dy: Tensor, x: Tensor, y: Tensor) => Tensor) | null } = {
  neg: (dy) => neg(dy), // d(-x) = -1
  exp: (dy, _x, y) => mul(dy, y), // d e^x = e^x
  log: (dy, x) => div(dy, x), // d log x = 1/x
  sqrt: (dy, _x, y) => div(dy, mul(y, 2)), // d sqrt x = 1 / (2 sqrt x)
  rsqrt: (dy, x, y) => mul(dy, div(mul(y, -0.5), x)), // d x^-1/2 = -1/2 x^-3/2 = -y / (2x)
  abs: (dy, x) => mul(dy, sign(x)), // d |x| = sign x
  tanh: (dy, _x, y) => mul(dy, sub(1, square(y))), // d tanh = 1 - tanh^2
  sigmoid: (dy, _x, y) => mul(dy, mul(y, sub(1, y))), // d s = s (1 - s)
  silu: (dy, x) => { // d x s(x) = s (1 + x (1 - s))
    const s = sigmoid(x);
    return mul(dy, mul(s, add(1, mul(x, sub(1, s)))));
  },
  relu: (dy, x) => mul(dy, gt(x, 0)), // d relu = [x > 0]
  sign: null,
  square: (dy, x) => mul(dy, mul(x, 2)), // d x^2 = 2x
  reciprocal: (dy, _x, y) => mul(dy, neg(square(y))), // d 1/x = -1/x^2
};

function unaryOp(op: UnaryOp, x: Tensor): Tensor {
  if (!isFloat(x.dtype) && op !== "neg" && op !== "abs" && op !== "sign" && op !== "square" && op !== "relu")
    throw new TypeError(`${op}: expects a float tensor, got ${x.dtype}`);
  const y = dispatch("unary", op, x);
  const vjp = unaryVjps[op];
  if (vjp === null) return y;
  return record(op, y, [x], (dy) => [vjp(dy, x, y)]);
}

export const neg = (x: Tensor): Tensor => unaryOp("neg", x);
export const exp = (x: Tensor): Tensor => unaryOp("exp", x);
export const log = (x: Tensor): Tensor => unaryOp("log", x);
export const sqrt = (x: Tensor): Tensor => unaryOp("sqrt", x);
export const rsqrt = (x: Tensor): Tensor => unaryOp("rsqrt", x);
export const abs = (x: Tensor): Tensor => unaryOp("abs", x);
export const tanh = (x: Tensor): Tensor => unaryOp("tanh", x);
export const sigmoid = (x: Tensor): Tensor => unaryOp("sigmoid", x);
export const silu = (x: Tensor): Tensor => unaryOp("silu", x);
export const relu = (x: Tensor): Tensor => unaryOp("relu", x);
export const sign = (x: Tensor): Tensor => unaryOp("sign", x);
export const square = (x: Tensor): Tensor => unaryOp("square", x);
export const reciprocal = (x: Tensor): Tensor => unaryOp("reciprocal", x);

/** x ** p for a scalar exponent p. */
export function pow(x: Tensor, p: number): Tensor {
  if (!isFloat(x.dtype)) throw new TypeError(`pow: expects a float tensor, got ${x.dtype}`);
  const out = dispatch("pow", x, p);
  // d x^p = p x^(p-1)
  return record("pow", out, [x], (dy) => [mul(dy, mul(pow(x, p - 1), p))]);
}

/** dy, a, b, y -> [da, db] before unbroadcasting. */
const binaryVjps: { [K in BinaryOp]: ((dy: Tensor, a: Tensor, b: Tensor, y: Tensor) => [Tensor | null, Tensor | null]) | null } = {
  add: (dy) => [dy, dy], // d(a+b) = (1, 1)
  sub: (dy) => [dy, neg(dy)], // d(a-b) = (1, -1)
  mul: (dy, a, b) => [mul(dy, b), mul(dy, a)], // d(ab) = (b, a)
  div: (dy, a, b, y) => [div(dy, b), neg(div(mul(dy, y), b))], // d(a/b) = (1/b, -a/b^2)
  maximum: (dy, a, b) => { // the gradient goes to the larger input (to a on ties, like torch.max's choice)
    const m = ge(a, b);
    return [mul(dy, m), mul(dy, sub(1, m))];
  },
  minimum: (dy, a, b) => {
    const m = le(a, b);
    return [mul(dy, m), mul(dy, sub(1, m))];
  },
  eq: null, ne: null, lt: null, le: null, gt: null, ge: null,
};

function asTensor(v: Tensor | number, like: Tensor): Tensor {
  return typeof v === "number" ? full([], v, { dtype: like.dtype }) : v;
}

function binaryOp(op: BinaryOp, a0: Tensor | number, b0: Tensor | number): Tensor {
  if (typeof a0 === "number" && typeof b0 === "number") throw new TypeError(`${op}: at least one operand must be a tensor`);
  const a = asTensor(a0, b0 as Tensor);
  const b = asTensor(b0, a);
  const dtype = resultDType(op, a.dtype, b.dtype);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const y = dispatch("binary", op, a, b, shape, dtype);
  const vjp = binaryVjps[op];
  if (vjp === null) return y;
  return record(op, y, [a, b], (dy) => {
    const [da, db] = vjp(dy, a, b, y);
    return [da && unbroadcast(da, a), db && unbroadcast(db, b)];
  });
}

/** Sums a cotangent over broadcast dimensions back to x's shape and dtype. */
export function unbroadcast(g: Tensor, x: Tensor): Tensor {
  const r = shapeEq(g.shape, x.shape) ? g : sumTo(g, x.shape);
  return r.dtype === x.dtype ? r : astype(r, x.dtype);
}

export const add = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp("add", a, b);
export const sub = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp("sub", a, b);
export const mul = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp("mul", a, b);
export const div = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp("div", a, b);
export const maximum = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp("maximum", a, b);
export const minimum = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp("minimum", a, b);
/** Comparisons return 1/0 in the operands' dtype and have no gradient. */
export const eq = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp("eq", a, b);
export const ne = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp("ne", a, b);
export const lt = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp("lt", a, b);
export const le = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp("le", a, b);
export const gt = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp("gt", a, b);
export const ge = (a: Tensor | number, b: Tensor | number): Tensor => binaryOp("ge", a, b);

/** cond ? a : b elementwise, with broadcasting; cond is any dtype (nonzero = true). */
export function where(cond: Tensor, a0: Tensor | number, b0: Tensor | number): Tensor {
  const a = asTensor(a0, typeof b0 === "number" ? cond : b0);
  const b = asTensor(b0, a);
  const dtype = resultDType("where", a.dtype, b.dtype);
  const shape = broadcastShapes("where", broadcastShapes("where", cond.shape, a.shape), b.shape);
  const c = shapeEq(cond.shape, shape) ? cond : broadcastTo(cond, shape);
  const ae = shapeEq(a.shape, shape) ? a : broadcastTo(a, shape);
  const be = shapeEq(b.shape, shape) ? b : broadcastTo(b, shape);
  const out = dispatch("where", c, ae, be, dtype);
  // d where = (dy where cond, dy where not cond)
  return record("where", out, [a, b], (dy) => {
    const z = full([], 0, { dtype: dy.dtype });
    return [unbroadcast(where(c, dy, z), a), unbroadcast(where(c, z, dy), b)];
  });
}

/** Converts to another dtype (float to int truncates toward zero). The gradient is cast back. */
export function astype(x: Tensor, dtype: Tensor["dtype"]): Tensor {
  if (x.dtype === dtype) return x;
  const out = dispatch("astype", x, dtype);
  if (!isFloat(dtype) || !isFloat(x.dtype)) return out;
  return record("astype", out, [x], (dy) => [astype(dy, x.dtype)]);
}
