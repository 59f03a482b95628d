import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fromFloat32, type DType } from '../../src/checkpoint/dtypes.ts';
import { SafetensorsFile, writeSafetensors } from '../../src/checkpoint/safetensors.ts';
import { CheckpointTensors, writeCheckpointTensors } from '../../src/checkpoint/tensors.ts';

const dir = mkdtempSync(join(tmpdir(), 'st-'));
const BENCH = join(import.meta.dirname, '..', '..', 'bin', 'bench.js');

/** Values exactly representable in every dtype, so decode(encode(x)) must equal x. */
const exact: Record<DType, number[]> = {
  F64: [1.5, -2.25, 1e300, 2 ** -1074],
  F32: [1.5, -2.25, 3.4028234663852886e38, 1e-45],
  F16: [1.5, -2.25, 65504, 2 ** -24],
  BF16: [1.5, -2.25, 3.3895313892515355e38, 2 ** -133],
  F8_E4M3: [1.5, -2.25, 448, 2 ** -9],
  I8: [-128, 127, 0, 5],
  U8: [0, 255, 1, 128],
  I16: [-32768, 32767, 0, -1],
  I32: [-2147483648, 2147483647, 0, -7],
  I64: [-(2 ** 53) + 1, 2 ** 53 - 1, 0, -3],
};

test('round trip of every dtype through a file, read by offset', () => {
  const path = join(dir, 'all.safetensors');
  const tensors = Object.entries(exact).map(([dtype, values]) => ({
    name: `t.${dtype}`,
    dtype: dtype as DType,
    shape: [2, 2],
    data: fromFloat32(values, dtype as DType),
  }));
  writeSafetensors(path, tensors, { format: 'pt' });
  const f = SafetensorsFile.open(path);
  assert.deepEqual(f.metadata, { format: 'pt' });
  for (const [dtype, values] of Object.entries(exact)) {
    const got = Array.from(f.readFloat32(`t.${dtype}`));
    // Compare as float32, the decode target.
    assert.deepEqual(got, values.map((v) => Math.fround(v)), dtype);
    assert.deepEqual(f.info(`t.${dtype}`).shape, [2, 2]);
  }
  f.close();
  // The raw layout follows the spec: u64 header length, JSON, data in name order.
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal(n % 8, 0);
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
  assert.deepEqual(header['t.BF16'], { dtype: 'BF16', shape: [2, 2], data_offsets: [0, 8] });
  assert.equal(bytes.length, 8 + n + Object.values(header).reduce((a: number, h: any) => a + (h.data_offsets ? h.data_offsets[1] - h.data_offsets[0] : 0), 0));
});

test('writer is deterministic: same tensors in any order give the same bytes', () => {
  const a = { name: 'a', dtype: 'F32' as DType, shape: [3], data: fromFloat32([1, 2, 3], 'F32') };
  const b = { name: 'b', dtype: 'I32' as DType, shape: [1], data: fromFloat32([7], 'I32') };
  writeSafetensors(join(dir, 'x.safetensors'), [a, b]);
  writeSafetensors(join(dir, 'y.safetensors'), [b, a]);
  assert.deepEqual(readFileSync(join(dir, 'x.safetensors')), readFileSync(join(dir, 'y.safetensors')));
});

test('sharded checkpoints: index + shards read back by name', () => {
  const d = join(dir, 'sharded');
  mkdirSync(d);
  const tensors = Array.from({ length: 5 }, (_, i) => ({
    name: `layer.${i}.weight`,
    dtype: 'F32' as DType,
    shape: [4],
    data: fromFloat32([i, i + 0.5, -i, 2 * i], 'F32'),
  }));
  writeCheckpointTensors(d, tensors, { maxShardBytes: 32 });
  const index = JSON.parse(readFileSync(join(d, 'model.safetensors.index.json'), 'utf8'));
  assert.equal(new Set(Object.values(index.weight_map)).size, 3);
  assert.equal(index.metadata.total_size, 80);
  const ckpt = CheckpointTensors.open(d);
  assert.equal(ckpt.names().length, 5);
  assert.deepEqual(Array.from(ckpt.readFloat32('layer.3.weight')), [3, 3.5, -3, 6]);
  ckpt.close();
});

/** Build a file from a header object and a data length, bypassing the writer. */
function rawFile(name: string, header: unknown, dataBytes: number, opts: { lenOverride?: bigint; rawHeader?: string } = {}): string {
  const json = Buffer.from(opts.rawHeader ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.lenOverride ?? BigInt(json.length));
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([len, json, Buffer.alloc(dataBytes)]));
  return path;
}

const malformed: [string, () => string, RegExp][] = [
  ['truncated file', () => { const p = join(dir, 'trunc.safetensors'); writeFileSync(p, Buffer.alloc(5)); return p; }, /truncated/],
  ['header length past EOF', () => rawFile('len.safetensors', {}, 0, { lenOverride: 1000n }), /past the end of the file/],
  ['non-JSON header', () => rawFile('json.safetensors', null, 0, { rawHeader: '{"a": [1, 2' }), /not valid UTF-8 JSON/],
  ['unknown dtype', () => rawFile('dtype.safetensors', { w: { dtype: 'F12', shape: [1], data_offsets: [0, 4] } }, 4), /unknown dtype "F12"/],
  ['span mismatch', () => rawFile('span.safetensors', { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, 12), /spans 12 bytes but shape \[2,2\] of F32 needs 16/],
  ['overlapping spans', () => rawFile('overlap.safetensors', {
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
  }, 12), /'a' and 'b' overlap/],
  ['offsets past EOF', () => rawFile('eof.safetensors', { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8), /past the end of the file's 8 data bytes/],
];

for (const [what, make, message] of malformed) {
  test(`malformed header: ${what} -> one-line error, exit 2, no stack trace`, () => {
    const path = make();
    assert.throws(() => SafetensorsFile.open(path), (e: Error) => e.name === 'UserError' && message.test(e.message) && e.message.includes(path));
    const r = spawnSync(process.execPath, [BENCH, 'inspect', path], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^bench: error: .*invalid safetensors header/);
    assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/);
  });
}
