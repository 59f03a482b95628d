/**
 * The compressed-tensors reader refuses checkpoints whose quantization_config disagrees with
 * the tensors (missing, wrong dtype, wrong shape, zero points on a symmetric scheme,
 * quantized tensors on an ignored layer), each with a one-line UserError naming the layer;
 * the CLI turns bad input into one line on stderr and exit code 2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, cpSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { UserError } from '../../src/errors.ts';
import { quantizeModel } from '../../src/quant/index.ts';
import { readCompressedCheckpoint } from '../../src/checkpoint/compressed-tensors.ts';
import { CheckpointTensors, writeCheckpointTensors } from '../../src/checkpoint/tensors.ts';
import { fromFloat32 } from '../../src/checkpoint/dtypes.ts';
import type { TensorToWrite } from '../../src/checkpoint/safetensors.ts';
import { makeTinyModel } from '../quant/helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'ct-bad-'));
const model = makeTinyModel(join(root, 'model'), 11);
const BENCH = join(import.meta.dirname, '..', '..', 'bin', 'bench.js');
const L = 'model.layers.0.self_attn.q_proj';

const good = join(root, 'good-asym');
await quantizeModel(model, 'W4A16', 'rtn', { out: good, groupSize: 32, asym: true });
const goodSym = join(root, 'good-sym');
await quantizeModel(model, 'W3A16', 'rtn', { out: goodSym, groupSize: 32 });

/** Copy a checkpoint, then let `edit` change its tensors and/or its quantization_config. */
function tampered(src: string, name: string, edit: { tensors?: (t: TensorToWrite[]) => TensorToWrite[]; qc?: (qc: any) => void }): string {
  const dir = join(root, name);
  cpSync(src, dir, { recursive: true });
  if (edit.tensors) {
    const ck = CheckpointTensors.open(src);
    const ts = ck.names().map((n) => ({ name: n, dtype: ck.info(n).dtype, shape: ck.info(n).shape, data: ck.readBytes(n) }));
    ck.close();
    writeCheckpointTensors(dir, edit.tensors(ts));
  }
  if (edit.qc) {
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    edit.qc(cfg.quantization_config);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  }
  return dir;
}

function assertOneLine(fn: () => unknown, re: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected UserError, got ${e}`);
    assert.ok(!e.message.includes('\n'), 'message must be one line');
    assert.match(e.message, re);
    return true;
  });
}

test('the untampered checkpoints read fine', () => {
  assert.equal(readCompressedCheckpoint(good).quantized.length, 14);
  assert.equal(readCompressedCheckpoint(goodSym).quantized.length, 14);
});

test('missing tensor', () => {
  const d = tampered(good, 'missing', { tensors: (ts) => ts.filter((t) => t.name !== `${L}.weight_scale`) });
  assertOneLine(() => readCompressedCheckpoint(d), /q_proj'.*missing tensor 'weight_scale'/);
});

test('group size in config disagrees with the scale shape', () => {
  const d = tampered(good, 'group', { qc: (qc) => (qc.config_groups.group_0.weights.group_size = 16) });
  assertOneLine(() => readCompressedCheckpoint(d), /tensor 'weight_scale' has shape \[64,(2|6)\], expected \[64,(4|11)\]/);
});

test('num_bits in config disagrees with the packed width', () => {
  const d = tampered(goodSym, 'bits', { qc: (qc) => (qc.config_groups.group_0.weights.num_bits = 4) });
  assertOneLine(() => readCompressedCheckpoint(d), /tensor 'weight_packed' has shape \[64,(6|17)\], expected \[64,(8|22)\]/);
});

test('symmetric in config but zero points in the file', () => {
  const d = tampered(good, 'symzp', { qc: (qc) => (qc.config_groups.group_0.weights.symmetric = true) });
  assertOneLine(() => readCompressedCheckpoint(d), /has 'weight_zero_point' but the scheme is symmetric/);
});

test('asymmetric in config but no zero points', () => {
  const d = tampered(goodSym, 'asymnozp', { qc: (qc) => (qc.config_groups.group_0.weights.symmetric = false) });
  assertOneLine(() => readCompressedCheckpoint(d), /missing tensor 'weight_zero_point'/);
});

test('wrong dtype of a scale', () => {
  const d = tampered(good, 'dtype', {
    tensors: (ts) => ts.map((t) => (t.name === `${L}.weight_scale` ? { ...t, dtype: 'I16' as const } : t)),
  });
  assertOneLine(() => readCompressedCheckpoint(d), /weight_scale' is I16, expected F16 or BF16 or F32/);
});

test('quantized tensors on a layer the config ignores', () => {
  const d = tampered(good, 'ignored', { qc: (qc) => qc.ignore.push(L) });
  assertOneLine(() => readCompressedCheckpoint(d), /has quantized tensors but is listed in ignore/);
});

test('weight_shape disagrees with config.json dims', () => {
  const d = tampered(good, 'wshape', {
    tensors: (ts) => ts.map((t) => (t.name === `${L}.weight_shape` ? { ...t, data: fromFloat32([64, 32], 'I64') } : t)),
  });
  assertOneLine(() => readCompressedCheckpoint(d), /weight is \[64, 32\] but config.json implies \[64,64\]/);
});

test('an unquantized model is not a compressed-tensors checkpoint', () => {
  assertOneLine(() => readCompressedCheckpoint(model), /no quantization_config/);
});

function bench(...args: string[]) {
  return spawnSync(process.execPath, [BENCH, ...args], { encoding: 'utf8' });
}

function assertExit2(r: ReturnType<typeof bench>, re: RegExp) {
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], re);
}

test('CLI: unknown scheme -> did you mean, exit 2', () => {
  assertExit2(bench('quantize', '--model', model, '--scheme', 'W4A61', '--out', join(root, 'x1')), /unknown scheme 'W4A61'; did you mean 'W4A16'/);
});

test('CLI: group size that does not fit the layer -> exit 2', () => {
  assertExit2(bench('quantize', '--model', model, '--scheme', 'W4A16', '--out', join(root, 'x2')), /group size 128 does not fit the input width 64/);
  assert.ok(!existsSync(join(root, 'x2')));
});

test('CLI: source checkpoint tensors disagree with its config -> exit 2', () => {
  const broken = tampered(model, 'broken-src', { tensors: (ts) => ts.filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight') });
  assertExit2(bench('quantize', '--model', broken, '--scheme', 'W4A16', '--group-size', '32', '--out', join(root, 'x3')), /missing tensor 'model.layers.1.mlp.up_proj.weight'/);
});

test('CLI: quantizing an already-quantized checkpoint -> exit 2', () => {
  assertExit2(bench('quantize', '--model', good, '--scheme', 'W4A16', '--group-size', '32', '--out', join(root, 'x4')), /already quantized \(config.json has quantization_config\)/);
});

test('CLI: quantize --json writes a summary on stdout alone, and the checkpoint reads back', () => {
  const out = join(root, 'cli-out');
  const r = bench('quantize', '--model', model, '--scheme', 'NVFP4A16', '--out', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.scheme, 'NVFP4A16');
  assert.equal(s.quantized.length, 14);
  assert.equal(readCompressedCheckpoint(out).quantized.length, 14);
  assertExit2(bench('quantize', '--model', model, '--scheme', 'NVFP4A16', '--out', out), /already exists; .* --force/);
});

test('legacy (< 0.18) 3-bit packing is read by version, and gives the same weights as the dense file', async () => {
  const { unpackInt32, packInt32 } = await import('../../src/quant/formats/index.ts');
  const ck = CheckpointTensors.open(goodSym);
  const legacyTensors = ck.names().map((n) => {
    const info = ck.info(n);
    let data = ck.readBytes(n);
    let shape = info.shape;
    if (n.endsWith('.weight_packed')) {
      const ws = Array.from(ck.readFloat32(n.replace('weight_packed', 'weight_shape')));
      const u = unpackInt32(new Int32Array(data.buffer), ws[0], ws[1], 3, 'dense');
      const p = packInt32(u, ws[0], ws[1], 3, 'legacy');
      data = new Uint8Array(p.buffer);
      shape = [ws[0], p.length / ws[0]];
    }
    return { name: n, dtype: info.dtype, shape, data };
  });
  ck.close();
  // No version -> layout inferred from the shape; version 0.17 -> legacy explicitly.
  for (const version of [undefined, '0.17.1']) {
    const d = tampered(goodSym, `legacy-${version}`, { tensors: () => legacyTensors, qc: (qc) => (version ? (qc.version = version) : delete qc.version) });
    const a = readCompressedCheckpoint(d);
    const b = readCompressedCheckpoint(goodSym);
    for (const [k, v] of b.weights) assert.deepEqual(a.weights.get(k), v, k);
  }
  // Dense tensors under a legacy version disagree in shape.
  const wrong = tampered(goodSym, 'legacy-wrong', { qc: (qc) => (qc.version = '0.12.2') });
  assertOneLine(() => readCompressedCheckpoint(wrong), /weight_packed' has shape \[\d+,\d+\], expected/);
});

test('the minimal quantization_config accepted by every compressed-tensors version reads the same', () => {
  const d = tampered(goodSym, 'minimal', {
    qc: (qc) => {
      for (const k of Object.keys(qc)) if (!['quant_method', 'format', 'ignore', 'config_groups', 'version'].includes(k)) delete qc[k];
      qc.quantization_status = 'compressed';
      qc.config_groups = { group_0: { targets: ['Linear'], weights: { num_bits: 3, type: 'int', symmetric: true, strategy: 'group', group_size: 32, dynamic: false } } };
    },
  });
  const a = readCompressedCheckpoint(d);
  const b = readCompressedCheckpoint(goodSym);
  assert.deepEqual([...a.weights.keys()], [...b.weights.keys()]);
  for (const [k, v] of b.weights) assert.deepEqual(a.weights.get(k), v, k);
});
