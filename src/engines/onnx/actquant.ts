/**
 * Activation quantization emulated inside the ONNX graph: quantize-dequantize the input
 * of a Linear exactly as the scheme would before its low-precision GEMM (formats.md §4-5).
 * Rounding is done with plain arithmetic ops so that it is exact and testable:
 * `Round` is round-half-to-even in ONNX, and the grid step is an exact power of two.
 */
import type { GraphBuilder } from './graph.ts';

/**
 * How one Linear's input is quantized.
 * - fp8 (E4M3): `dynamic` = per-token scale amax/448 computed at run time (floored at
 *   1/(448·512) as vLLM and auto-round do); static = per-tensor `staticScale`, a
 *   multiplier (compressed-tensors' `input_scale` = calibrated amax / 448).
 * - nvfp4: blocks of 16 along the input features with E4M3 block scales computed at run
 *   time, and a global scale that is a divisor (448·6/amax, compressed-tensors'
 *   `input_global_scale`): static = `staticScale`; dynamic = per token from its amax.
 */
export interface ActQuant {
  kind: 'fp8' | 'nvfp4';
  dynamic: boolean;
  /** 'token' (dynamic) or 'tensor' (static). */
  granularity: 'token' | 'tensor';
  staticScale?: number;
}

export const FP8_MAX = 448;
export const FP4_MAX = 6;
const FP8_MIN_SCALE = 1 / (448 * 512);
const NVFP4_BLOCK = 16;

/** Check a setting once, up front, with a message that names the Linear. */
export function validateActQuant(name: string, q: ActQuant): void {
  const where = `activation quantization of '${name}'`;
  if (q.kind !== 'fp8' && q.kind !== 'nvfp4') throw new Error(`${where}: kind must be 'fp8' or 'nvfp4', got '${String(q.kind)}'`);
  if (q.dynamic) {
    if (q.granularity !== 'token') throw new Error(`${where}: dynamic scales are per token (granularity 'token'); a dynamic per-tensor scale would depend on batch padding`);
  } else {
    if (q.granularity !== 'tensor') throw new Error(`${where}: static scales are per tensor (granularity 'tensor')`);
    if (!(typeof q.staticScale === 'number' && Number.isFinite(q.staticScale) && q.staticScale > 0)) {
      throw new Error(`${where}: a static scheme needs a positive finite staticScale, got ${q.staticScale}`);
    }
  }
}

/** Round x (already within ±448) to the nearest E4M3 value, ties to even. */
export function fp8Grid(g: GraphBuilder, x: string): string {
  const a = g.op('Abs', [x]);
  // floor(log2 a), corrected by one either way so that powers of two are exact.
  let e = g.op('Floor', [g.op('Div', [g.op('Log', [a]), g.constF(Math.LN2)])]);
  const p = g.op('Pow', [g.constF(2), e]);
  const tooBig = g.op('Cast', [g.op('Greater', [p, a])], { to: { int: 1 } });
  const tooSmall = g.op('Cast', [g.op('LessOrEqual', [g.op('Mul', [p, g.constF(2)]), a])], { to: { int: 1 } });
  e = g.op('Add', [g.op('Sub', [e, tooBig]), tooSmall]);
  // Subnormals share the spacing of the lowest normal binade (2^-6): step 2^-9.
  e = g.op('Max', [e, g.constF(-6)]);
  const step = g.op('Pow', [g.constF(2), g.op('Sub', [e, g.constF(3)])]);
  return g.op('Mul', [g.op('Round', [g.op('Div', [x, step])]), step]);
}

/** Round x to the nearest FP4 E2M1 value (0, .5, 1, 1.5, 2, 3, 4, 6), ties to even, saturating at ±6. */
export function fp4Grid(g: GraphBuilder, x: string): string {
  const a = g.op('Min', [g.op('Abs', [x]), g.constF(FP4_MAX)]);
  // Spacing 0.5 below 2, 1 in [2, 4), 2 in [4, 6].
  const ge2 = g.op('Cast', [g.op('GreaterOrEqual', [a, g.constF(2)])], { to: { int: 1 } });
  const ge4 = g.op('Cast', [g.op('GreaterOrEqual', [a, g.constF(4)])], { to: { int: 1 } });
  const step = g.op('Add', [g.op('Add', [g.constF(0.5), g.op('Mul', [ge2, g.constF(0.5)])]), ge4]);
  const q = g.op('Mul', [g.op('Round', [g.op('Div', [a, step])]), step]);
  return g.op('Mul', [q, g.op('Sign', [x])]);
}

function rowAmax(g: GraphBuilder, x: string, axis: number): string {
  return g.op('ReduceMax', [g.op('Abs', [x]), g.constI64([axis])], { keepdims: { int: 1 } });
}

/** Quantize-dequantize `x` [tokens, features] as the scheme's GEMM input would be. */
export function fakeQuantActivation(g: GraphBuilder, x: string, features: number, q: ActQuant): string {
  return q.kind === 'fp8' ? fakeQuantFp8(g, x, q) : fakeQuantNvfp4(g, x, features, q);
}

function fakeQuantFp8(g: GraphBuilder, x: string, q: ActQuant): string {
  const scale = q.dynamic
    ? g.op('Max', [g.op('Div', [rowAmax(g, x, 1), g.constF(FP8_MAX)]), g.constF(FP8_MIN_SCALE)])
    : g.constF(q.staticScale!);
  const y = g.op('Clip', [g.op('Div', [x, scale]), g.constF(-FP8_MAX), g.constF(FP8_MAX)]);
  return g.op('Mul', [fp8Grid(g, y), scale]);
}

function fakeQuantNvfp4(g: GraphBuilder, x: string, features: number, q: ActQuant): string {
  const blocks = Math.ceil(features / NVFP4_BLOCK);
  const padded = blocks * NVFP4_BLOCK;
  // A short last block is zero-padded; zeros change no block maximum.
  const xp = padded === features ? x : g.op('Pad', [x, g.constI64([0, 0, 0, padded - features])], { mode: { string: 'constant' } });
  const xb = g.op('Reshape', [xp, g.constI64([0, blocks, NVFP4_BLOCK])]);
  // Dynamic global scale: per token, from the amax of its whole row.
  const globalScale = q.dynamic
    ? g.op('Div', [g.constF(FP8_MAX * FP4_MAX), g.op('Max', [g.op('ReduceMax', [g.op('Abs', [xb]), g.constI64([1, 2])], { keepdims: { int: 1 } }), g.constF(1e-30)])])
    : g.constF(q.staticScale!);
  const blockAmax = rowAmax(g, xb, 2);
  const s = g.op('Clip', [g.op('Mul', [globalScale, g.op('Div', [blockAmax, g.constF(FP4_MAX)])]), g.constF(-FP8_MAX), g.constF(FP8_MAX)]);
  let s8 = fp8Grid(g, s);
  // compressed-tensors replaces a zero block scale by the E4M3 eps (0.125).
  s8 = g.op('Where', [g.op('Equal', [s8, g.constF(0)]), g.constF(0.125), s8]);
  const e = g.op('Div', [s8, globalScale]);
  const qv = fp4Grid(g, g.op('Clip', [g.op('Div', [xb, e]), g.constF(-FP4_MAX), g.constF(FP4_MAX)]));
  const deq = g.op('Reshape', [g.op('Mul', [qv, e]), g.constI64([0, padded])]);
  return padded === features ? deq : g.op('Slice', [deq, g.constI64([0]), g.constI64([features]), g.constI64([1])]);
}
