/** The hot-loop e4m3 encoder equals the reference search-based one in dtypes.ts on every code, tie and random value. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { e4m3Fast } from '../../src/quant/formats/fp8.ts';
import { e4m3ToF32, f32ToE4m3 } from '../../src/checkpoint/dtypes.ts';
import { rng } from './helpers.ts';

test('e4m3Fast == f32ToE4m3 (RNE) on codes, midpoints, midpoints ± 1 ulp, and 200k random values', () => {
  const vals: number[] = [0, 448, -448, 2 ** -10, 3 * 2 ** -11, 0.015625, 0.0146484375];
  const pos = Array.from({ length: 127 }, (_, b) => e4m3ToF32(b));
  for (let b = 0; b < 126; b++) {
    const mid = Math.fround((pos[b] + pos[b + 1]) / 2);
    const up = new Float32Array([mid]);
    const bits = new Uint32Array(up.buffer);
    vals.push(pos[b], mid);
    bits[0]++; vals.push(up[0]);
    bits[0] -= 2; vals.push(up[0]);
  }
  const r = rng(17);
  for (let i = 0; i < 200000; i++) vals.push(Math.fround((r() * 2 - 1) * 448 * 2 ** -(r() * 20)));
  for (const v of vals) {
    for (const x of [v, -v]) {
      if (x === 0) continue;
      assert.equal(e4m3Fast(x), f32ToE4m3(x), `x = ${x}`);
    }
  }
});
