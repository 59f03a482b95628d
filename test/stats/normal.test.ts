/** erf/erfc, the normal quantile, p-values and the z-test against tabulated values. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { erf, erfc, normalQuantile, normCdf, twoSidedP, zFor, zTest } from '../../src/stats/index.ts';

const rel = (a: number, b: number, tol: number, msg?: string) => assert.ok(Math.abs(a - b) <= tol * Math.abs(b), `${msg ?? ''} ${a} vs ${b} (rel tol ${tol})`);
const close = (a: number, b: number, tol: number, msg?: string) => assert.ok(Math.abs(a - b) <= tol, `${msg ?? ''} ${a} vs ${b} (tol ${tol})`);

test('erfc and erf against tabulated values (C libm via Python math.erfc/erf)', () => {
  const table: [x: number, erfc: number, erf: number][] = [
    [0.1, 0.8875370839817152, 0.1124629160182849],
    [0.5, 0.4795001221869535, 0.5204998778130465],
    [1, 0.15729920705028513, 0.8427007929497149],
    [1.5, 0.033894853524689274, 0.9661051464753108],
    [1.99, 0.004888586800383003, 0.995111413199617],
    [2, 0.004677734981047265, 0.9953222650189527],
    [2.5, 0.0004069520174449589, 0.999593047982555],
    [3, 2.2090496998585438e-5, 0.9999779095030014],
    [4, 1.541725790028002e-8, 0.9999999845827421],
    [5, 1.5374597944280351e-12, 0.9999999999984626],
    [6, 2.1519736712498916e-17, 1],
    [10, 2.088487583762545e-45, 1],
    [26, 5.663192408856143e-296, 1],
  ];
  assert.equal(erfc(0), 1);
  assert.equal(erf(0), 0);
  for (const [x, c, e] of table) {
    // Relative accuracy in the tail is what quantiles and small p-values need.
    rel(erfc(x), c, 1e-13, `erfc(${x})`);
    rel(erf(x), e, 1e-15, `erf(${x})`);
    rel(erfc(-x), 2 - c, 1e-15, `erfc(-${x})`);
    assert.equal(erf(-x), -erf(x));
  }
  // The old test's looser checks still hold.
  close(erfc(1), 0.1572992070502851, 2e-7);
  close(erfc(-1), 1.8427007929497148, 2e-7);
  assert.ok(Number.isNaN(erfc(NaN)));
  assert.equal(erfc(Infinity), 0);
  assert.equal(erfc(-Infinity), 2);
  assert.equal(erf(Infinity), 1);
});

test('normal quantile and z for two-sided levels (tabulated: AS241 via Python statistics.NormalDist)', () => {
  const z: [level: number, z: number][] = [
    [0.5, 0.6744897501960817],
    [0.8, 1.2815515655446008],
    [0.9, 1.6448536269514722],
    [0.95, 1.959963984540054],
    [0.98, 2.3263478740408408],
    [0.99, 2.5758293035489],
    [0.999, 3.2905267314918945],
    [0.9999, 3.89059188641312],
  ];
  for (const [level, want] of z) close(zFor(level), want, 1e-12, `zFor(${level})`);
  assert.ok(Math.abs(zFor(0.9) - 1.6448536269514722) < 1e-9);
  close(normalQuantile(1e-10), -6.361340902404056, 1e-11);
  close(normalQuantile(0.3), -0.5244005127080407, 1e-14);
  assert.equal(normalQuantile(0.5), 0);
  assert.equal(normalQuantile(0), -Infinity);
  assert.equal(normalQuantile(1), Infinity);
  for (const p of [1e-6, 0.01, 0.2, 0.7, 0.975]) close(normCdf(normalQuantile(p)), p, 1e-15 + 1e-13 * p);
  assert.throws(() => zFor(1), RangeError);
  assert.throws(() => normalQuantile(1.5), RangeError);
});

test('z-test and two-sided p against tabulated normal values', () => {
  const z = zTest(0, 1, 1.959963984540054, 0);
  close(z.z, 1.959963984540054, 1e-12);
  close(z.p, 0.05, 1e-6);
  rel(z.p, 0.05, 1e-13);
  const z2 = zTest(0.7, 0.03, 0.65, 0.04); // diff -0.05, se 0.05, z -1 -> p 0.3173105
  close(z2.diff, -0.05, 1e-12);
  close(z2.se, 0.05, 1e-12);
  close(z2.p, 0.31731050786291415, 1e-6);
  // 2 * (1 - Phi(z)) for z = 3 and 5 (erfc(z / sqrt 2) from libm).
  rel(twoSidedP(3), 0.0026997960632601913, 1e-12);
  rel(twoSidedP(-5), 5.733031437583892e-7, 1e-12);
  assert.equal(zTest(1, 0, 1, 0).p, 1);
  assert.equal(zTest(1, 0, 2, 0).p, 0);
});
