/**
 * In-graph activation quantization (FP8 E4M3, NVFP4) against formats.md's worked
 * examples and against a direct TypeScript computation that picks the nearest grid value
 * by enumerating the grid (a different algorithm from the graph's log2/Round one).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../src/engines/onnx/graph.ts';
import { DT } from '../../src/engines/onnx/proto.ts';
import { fakeQuantActivation, fp4Grid, fp8Grid, type ActQuant } from '../../src/engines/onnx/actquant.ts';
import { rng } from './fixtures.ts';

const f = Math.fround;
/** -0 and +0 are the same number here. */
const z = (a: Iterable<number>) => [...a].map((v) => v + 0);

/** Run a one-input graph [rows, cols] -> same shape. */
async function runGraph(build: (g: GraphBuilder, x: string) => string, data: number[], rows: number, cols: number): Promise<Float32Array> {
  const g = new GraphBuilder();
  const x = g.input('x', DT.FLOAT, ['rows', cols]);
  g.output('y', build(g, x), DT.FLOAT, ['rows', cols]);
  const s = await ort.InferenceSession.create(g.build(), { logSeverityLevel: 3 });
  const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from(data), [rows, cols]) });
  await s.release();
  return out.y.data as Float32Array;
}

// All non-negative E4M3 values with their codes (code order = value order), and E2M1.
const E4M3: number[] = [];
for (let c = 0; c <= 0x7e; c++) {
  const e = c >> 3;
  const m = c & 7;
  E4M3.push(e === 0 ? m * 2 ** -9 : (1 + m / 8) * 2 ** (e - 7));
}
const E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6];

/** Nearest grid value by enumeration; ties to the even code; saturates at the grid max. */
function nearest(grid: number[], x: number): number {
  const a = Math.min(Math.abs(x), grid[grid.length - 1]);
  let best = 0;
  for (let i = 1; i < grid.length; i++) {
    const d = Math.abs(grid[i] - a);
    const db = Math.abs(grid[best] - a);
    if (d < db || (d === db && i % 2 === 0)) best = i;
  }
  return Math.sign(x) * grid[best] || 0;
}

test('FP4 E2M1 rounding: formats.md §2 check vector, both signs', async () => {
  const x = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.26, 2.6, 5.1, 6.4, 7.9];
  const want = [0, 1, 1, 2, 2, 4, 4, 0.5, 3, 6, 6, 6];
  const y = await runGraph((g, v) => fp4Grid(g, v), [...x, ...x.map((v) => -v)], 2, 12);
  assert.deepEqual(z(y), z([...want, ...want.map((v) => -v)]));
});

test('FP8 E4M3 rounding: ties to even, subnormals, powers of two, saturation', async () => {
  const x = [17, 19, 2 ** -10, 3 * 2 ** -10, 448, 464, 0.015625, 2 ** -9, 1, 2, 8, 240, 0];
  const want = [16, 20, 0, 2 ** -8, 448, 448, 0.015625, 2 ** -9, 1, 2, 8, 240, 0];
  const y = await runGraph((g, v) => fp8Grid(g, g.op('Clip', [v, g.constF(-448), g.constF(448)])), x, 1, x.length);
  assert.deepEqual([...y], want);
});

test('FP8 grid equals enumeration on 20000 random float32 values across all binades', async () => {
  const r = rng(11);
  const x = Array.from({ length: 20000 }, () => f((r() < 0.5 ? -1 : 1) * 2 ** (r() * 20 - 11) * (1 + r())));
  const y = await runGraph((g, v) => fp8Grid(g, g.op('Clip', [v, g.constF(-448), g.constF(448)])), x, 1, x.length);
  const want = x.map((v) => nearest(E4M3, v));
  let bad = 0;
  want.forEach((w, i) => (bad += w === y[i] ? 0 : 1));
  assert.equal(bad, 0);
});

test('FP8 per-tensor worked example (formats.md §5.4), static and dynamic per-token', async () => {
  const x = [0.5, -1.7, 3.14159, 0.001, -12.0, 7.77];
  const want = [0.482143, -1.714286, 3.214286, 0.001046, -12.0, 7.714286];
  for (const q of [
    { kind: 'fp8', dynamic: false, granularity: 'tensor', staticScale: 12 / 448 },
    { kind: 'fp8', dynamic: true, granularity: 'token' },
  ] as ActQuant[]) {
    const y = await runGraph((g, v) => fakeQuantActivation(g, v, 6, q), x, 1, 6);
    want.forEach((w, i) => assert.ok(Math.abs(y[i] - w) < 1e-6, `${q.dynamic ? 'dynamic' : 'static'} x=${x[i]}: ${y[i]} vs ${w}`));
  }
});

/** Direct float32 computation of formats.md §5.2 dynamic per token. */
function fp8PerTokenTs(row: number[]): number[] {
  const amax = Math.max(...row.map(Math.abs));
  const scale = Math.max(f(amax / 448), f(1 / (448 * 512)));
  return row.map((v) => f(nearest(E4M3, Math.max(-448, Math.min(448, f(v / scale)))) * scale));
}

/** Direct float32 computation of formats.md §4.1 for one token (blocks of 16, zero-padded tail). */
function nvfp4Ts(row: number[], gs: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < row.length; b += 16) {
    const blk = row.slice(b, b + 16);
    const amax = Math.max(...blk.map(Math.abs));
    let s8 = nearest(E4M3, Math.min(448, f(gs * f(amax / 6))));
    if (s8 === 0) s8 = 0.125;
    const e = f(s8 / gs);
    for (const v of blk) out.push(f(nearest(E2M1, Math.max(-6, Math.min(6, f(v / e)))) * e));
  }
  return out;
}

test('FP8 dynamic per-token equals a direct TypeScript computation (random rows)', async () => {
  const r = rng(5);
  const rows = 7;
  const cols = 37;
  const x = Array.from({ length: rows * cols }, (_, i) => f((r() * 2 - 1) * 10 ** (Math.floor(i / cols) - 3)));
  const y = await runGraph((g, v) => fakeQuantActivation(g, v, cols, { kind: 'fp8', dynamic: true, granularity: 'token' }), x, rows, cols);
  for (let i = 0; i < rows; i++) assert.deepEqual(z(y.subarray(i * cols, (i + 1) * cols)), z(fp8PerTokenTs(x.slice(i * cols, (i + 1) * cols))));
});

test('NVFP4 worked example (formats.md §4.3): static global scale 8960', async () => {
  const row0 = [0.012, -0.034, 0.051, 0.007, -0.09, 0.023, 0.0, -0.015, 0.044, 0.031, -0.006, 0.018, -0.027, 0.062, -0.048, 0.009];
  const row1 = [0.3, -0.12, 0.045, -0.21, 0.075, 0.15, -0.06, 0.018, -0.285, 0.09, 0.24, -0.03, 0.105, -0.165, 0.012, 0.195];
  const want0 = [0.014286, -0.028571, 0.057143, 0.007143, -0.085714, 0.021429, 0, -0.014286, 0.042857, 0.028571, -0.007143, 0.021429, -0.028571, 0.057143, -0.042857, 0.007143];
  const want1 = [0.3, -0.1, 0.05, -0.2, 0.075, 0.15, -0.05, 0.025, -0.3, 0.1, 0.2, -0.025, 0.1, -0.15, 0, 0.2];
  const q: ActQuant = { kind: 'nvfp4', dynamic: false, granularity: 'tensor', staticScale: (448 * 6) / 0.3 };
  const y = await runGraph((g, v) => fakeQuantActivation(g, v, 16, q), [...row0, ...row1], 2, 16);
  [...want0, ...want1].forEach((w, i) => assert.ok(Math.abs(y[i] - w) < 1e-6, `element ${i}: ${y[i]} vs ${w}`));
});

test('NVFP4 static and dynamic equal a direct TypeScript computation, incl. a padded last block', async () => {
  const r = rng(9);
  const rows = 5;
  const cols = 43; // 2 full blocks + a short block of 11
  const x = Array.from({ length: rows * cols }, (_, i) => f((r() * 2 - 1) * (i % cols < 16 ? 0.01 : 1) * (1 + Math.floor(i / cols))));
  x[3 * cols + 20] = 0; // exact zeros must stay zero
  const gsStatic = f((448 * 6) / 4.2);
  const ys = await runGraph((g, v) => fakeQuantActivation(g, v, cols, { kind: 'nvfp4', dynamic: false, granularity: 'tensor', staticScale: gsStatic }), x, rows, cols);
  const yd = await runGraph((g, v) => fakeQuantActivation(g, v, cols, { kind: 'nvfp4', dynamic: true, granularity: 'token' }), x, rows, cols);
  for (let i = 0; i < rows; i++) {
    const row = x.slice(i * cols, (i + 1) * cols);
    assert.deepEqual(z(ys.subarray(i * cols, (i + 1) * cols)), z(nvfp4Ts(row, gsStatic)), `static row ${i}`);
    const gsDyn = f(2688 / Math.max(...row.map(Math.abs)));
    assert.deepEqual(z(yd.subarray(i * cols, (i + 1) * cols)), z(nvfp4Ts(row, gsDyn)), `dynamic row ${i}`);
  }
});

test('an all-zero block quantizes to zeros (zero block scale replaced by 0.125, no NaN)', async () => {
  const x = [...new Array(16).fill(0), ...Array.from({ length: 16 }, (_, i) => i / 10)];
  const y = await runGraph((g, v) => fakeQuantActivation(g, v, 32, { kind: 'nvfp4', dynamic: false, granularity: 'tensor', staticScale: 2688 / 1.5 }), x, 1, 32);
  assert.deepEqual([...y.subarray(0, 16)], new Array(16).fill(0));
  assert.ok([...y].every(Number.isFinite));
});
