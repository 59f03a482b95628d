/** `bench schemes`: bits per weight including scale and zero-point overhead, JSON on stdout only. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const BENCH = join(import.meta.dirname, '..', '..', 'bin', 'bench.js');

test('bench schemes --json --group-size 32 --asym: bits per weight by hand', () => {
  const r = spawnSync(process.execPath, [BENCH, 'schemes', '--json', '--group-size', '32', '--asym'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const bpw = Object.fromEntries(JSON.parse(r.stdout).schemes.map((s: { name: string; bitsPerWeight: number }) => [s.name, s.bitsPerWeight]));
  // int b + 16-bit scale / 32 + b-bit zero point / 32
  assert.equal(bpw.W4A16, 4 + 16 / 32 + 4 / 32);
  assert.equal(bpw.W2A16, 2 + 16 / 32 + 2 / 32);
  assert.equal(bpw.W8A16, 8 + 16 / 32 + 8 / 32);
  // fixed formats ignore --group-size: E8M0 per 32, E4M3 per 16, f32 per 4096-wide channel
  assert.equal(bpw.MXFP4A16, 4.25);
  assert.equal(bpw.NVFP4A16, 4.5);
  assert.equal(bpw['W8A8-FP8'], Number((8 + 32 / 4096).toFixed(4)));
  assert.equal(bpw.BF16, 16);
});

test('bench schemes: default group 128 symmetric', () => {
  const r = spawnSync(process.execPath, [BENCH, 'schemes', '--json'], { encoding: 'utf8' });
  const s = JSON.parse(r.stdout).schemes.find((x: { name: string }) => x.name === 'W3A16');
  assert.equal(s.bitsPerWeight, 3 + 16 / 128);
});
