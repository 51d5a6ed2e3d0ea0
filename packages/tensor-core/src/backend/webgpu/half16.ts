// Read-only operands of the WebGPU kernels in float32 or in 16-bit storage (a frozen teacher weight kept as
// bfloat16 or IEEE binary16), widened to float32 as they are read: every product and sum stays in float32.
// Widening is exact, so a kernel reading a 16-bit operand gives exactly what it gives on the float32 copy of it.
//
// - bfloat16: the top half of a float32, widened by a shift (`bitcast<f32>(bits << 16u)`); no feature needed.
// - float16 without `shader-f16`: `unpack2x16float` of the 32-bit word holding two values.
// - float16 with `shader-f16`: the buffer is declared `array<f16>` (or `array<vec4<f16>>`) and converted with f32().
//
// Two values share a 32-bit word, element 2i in the low half (little-endian, as a Uint16Array uploads).

import type { DeviceDtype, WebGpuDevice } from "./device.js";

/** How a kernel reads one operand: its storage type, and whether native f16 is available. */
export type OperandType = "f32" | "bf16" | "f16" | "f16native";

/** The operand type of a device buffer dtype on this device (float32 and int32 buffers read as f32 here). */
export function operandType(dev: WebGpuDevice, dtype: DeviceDtype): OperandType {
  if (dtype === "bfloat16") return "bf16";
  if (dtype === "float16") return dev.features.f16 ? "f16native" : "f16";
  return "f32";
}

/** `enable f16;` when any operand needs it (first in the module). */
export function enableF16(...types: OperandType[]): string {
  return types.includes("f16native") ? "enable f16;\n" : "";
}

/**
 * WGSL for the read-only storage operand `name` at `binding`: its declaration and its reader, `ld<name>(i)`
 * (element i as f32) or, with `vec4`, `ld<name>(q)` (elements 4q .. 4q+3 as vec4<f32>).
 */
export function operandWgsl(name: string, binding: number, t: OperandType, vec4: boolean): string {
  const decl = (ty: string): string => `@group(0) @binding(${binding}) var<storage, read> ${name}: array<${ty}>;\n`;
  if (!vec4) {
    switch (t) {
      case "f32": return `${decl("f32")}fn ld${name}(i: u32) -> f32 { return ${name}[i]; }\n`;
      case "f16native": return `${decl("f16")}fn ld${name}(i: u32) -> f32 { return f32(${name}[i]); }\n`;
      case "bf16": return `${decl("u32")}fn ld${name}(i: u32) -> f32 { let w = ${name}[i >> 1u]; return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u)); }\n`;
      case "f16": return `${decl("u32")}fn ld${name}(i: u32) -> f32 { return unpack2x16float(${name}[i >> 1u])[i & 1u]; }\n`;
    }
  }
  switch (t) {
    case "f32": return `${decl("vec4<f32>")}fn ld${name}(q: u32) -> vec4<f32> { return ${name}[q]; }\n`;
    case "f16native": return `${decl("vec4<f16>")}fn ld${name}(q: u32) -> vec4<f32> { return vec4<f32>(${name}[q]); }\n`;
    case "bf16": return `${decl("vec2<u32>")}fn ld${name}(q: u32) -> vec4<f32> {
  let w = ${name}[q];
  return vec4<f32>(bitcast<f32>(w.x << 16u), bitcast<f32>(w.x & 0xffff0000u), bitcast<f32>(w.y << 16u), bitcast<f32>(w.y & 0xffff0000u));
}\n`;
    case "f16": return `${decl("vec2<u32>")}fn ld${name}(q: u32) -> vec4<f32> { let w = ${name}[q]; return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)); }\n`;
  }
}
