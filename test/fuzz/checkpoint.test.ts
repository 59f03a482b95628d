/**
 * Structure-aware fuzzing of what a checkpoint declares about itself: safetensors headers
 * (dtype, shape, offsets, names, duplicates, metadata, header length) and
 * `quantization_config` (enum values, types, patterns, deletions, duplicate keys). Each
 * case corrupts one fixture (a float model and compressed-tensors checkpoints of five
 * schemes) with 1 to 3 seeded mutations and loads it the way the engine does
 * (`loadEngineWeights`). The outcome must be either a UserError (exit 2, one line) or
 * exactly the weights and activation settings of the uncorrupted file, bit for bit. Any
 * other exception, or any different number, fails with the seed, the case and its
 * mutations, which replay it: FUZZ_SEED=<seed> FUZZ_CASES=<case+1>.
 *
 * Out of scope by construction: relabelling a scale between F16 and BF16. Both are legal
 * scale dtypes of the same width, so the corrupted file is a valid checkpoint with other
 * scales; only a content hash (the cache's sha256) can tell. The generator never makes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fromFloat32 } from '../../src/checkpoint/dtypes.ts';
import type { TensorToWrite } from '../../src/checkpoint/safetensors.ts';
import { writeCheckpointTensors } from '../../src/checkpoint/tensors.ts';
import { loadEngineWeights, type EngineWeights } from '../../src/engines/onnx/checkpoint.ts';
import { UserError } from '../../src/errors.ts';
import { quantizeModel } from '../../src/quant/index.ts';
import { SplitMix64 } from '../../src/stats/rng.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 20261208);
const CASES = Number(process.env.FUZZ_CASES ?? 10_000);
const root = mkdtempSync(join(tmpdir(), 'fuzz-ckpt-'));

// ---- fixtures: a tiny seeded Llama (widths 32 and 64, one layer) and its quantized forms

function tinyModel(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const r = new SplitMix64(7);
  const H = 32, I = 64, heads = 4, kv = 2, hd = 8, V = 32;
  const t = (name: string, shape: number[], std = 0.1): TensorToWrite => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = Float32Array.from({ length: n }, () => std * (r.nextFloat() * 2 - 1));
    return { name, dtype: 'F32', shape, data: fromFloat32(v, 'F32') };
  };
  const p = 'model.layers.0';
  writeCheckpointTensors(dir, [
    t('model.embed_tokens.weight', [V, H]), t('lm_head.weight', [V, H]), t('model.norm.weight', [H], 1),
    t(`${p}.input_layernorm.weight`, [H], 1), t(`${p}.post_attention_layernorm.weight`, [H], 1),
    t(`${p}.self_attn.q_proj.weight`, [heads * hd, H]), t(`${p}.self_attn.k_proj.weight`, [kv * hd, H]),
    t(`${p}.self_attn.v_proj.weight`, [kv * hd, H]), t(`${p}.self_attn.o_proj.weight`, [H, heads * hd]),
    t(`${p}.mlp.gate_proj.weight`, [I, H]), t(`${p}.mlp.up_proj.weight`, [I, H]), t(`${p}.mlp.down_proj.weight`, [H, I]),
  ]);
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: H, intermediate_size: I, num_hidden_layers: 1,
    num_attention_heads: heads, num_key_value_heads: kv, head_dim: hd, vocab_size: V, max_position_embeddings: 64,
    rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, torch_dtype: 'float32',
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  return dir;
}

interface Fixture {
  name: string;
  dir: string;
  expected: EngineWeights;
  header: Obj;
  data: Buffer;
  config: Obj | null;
}

const base = tinyModel(join(root, 'float'));
const fixtureDirs: [string, string][] = [['float', base]];
for (const [scheme, groupSize, asym] of [['W4A16', 16, true], ['W3A16', 16, false], ['MXFP4A16', undefined, false], ['NVFP4A16', undefined, false], ['W8A8-FP8', undefined, false]] as const) {
  const out = join(root, scheme);
  await quantizeModel(base, scheme, 'rtn', { out, ...(groupSize ? { groupSize } : {}), ...(asym ? { asym } : {}) });
  fixtureDirs.push([scheme, out]);
}

// ---- a JSON tree that keeps member order and allows duplicate keys

class Obj {
  constructor(public pairs: [string, unknown][]) {}
}
function toTree(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toTree);
  if (v && typeof v === 'object') return new Obj(Object.entries(v).map(([k, x]) => [k, toTree(x)]));
  return v;
}
function toText(v: unknown, indent = false): string {
  if (v instanceof Obj) return `{${v.pairs.map(([k, x]) => `${JSON.stringify(k)}:${indent ? ' ' : ''}${toText(x, indent)}`).join(indent ? ',\n ' : ',')}}`;
  if (Array.isArray(v)) return `[${v.map((x) => toText(x, indent)).join(',')}]`;
  return JSON.stringify(v) ?? 'null';
}
const clone = (v: unknown): unknown => (v instanceof Obj ? new Obj(v.pairs.map(([k, x]) => [k, clone(x)])) : Array.isArray(v) ? v.map(clone) : v);

function readHeader(dir: string): { header: Obj; data: Buffer } {
  const bytes = readFileSync(join(dir, 'model.safetensors'));
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: toTree(JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'))) as Obj, data: bytes.subarray(8 + n) };
}

const fixtures: Fixture[] = fixtureDirs.map(([name, dir]) => {
  const { header, data } = readHeader(dir);
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  return { name, dir, expected: loadEngineWeights(dir), header, data, config: cfg.quantization_config ? (toTree(cfg) as Obj) : null };
});

// ---- mutations

type Rng = SplitMix64;
const pick = <T,>(r: Rng, xs: readonly T[]): T => xs[r.nextInt(xs.length)];

const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'F8_E4M3', 'F12', 'f32', 'BOOL', 'U16', 'F8_E5M2', '', null, 4, ['F32']];
const POOL: unknown[] = [
  null, true, false, 0, -1, 1, 2, 3, 4, 5, 7, 8, 9, 16, 32, 64, 128, 1.5, -0.5, 1e308, 2 ** 53, '', '4', '8', 'int', 'float', 'INT',
  'group', 'channel', 'tensor', 'tensor_group', 'token', 'block', 'attn_head', 'grouped', 'compressed', 'frozen', 'initialized',
  'pack-quantized', 'float-quantized', 'naive-quantized', 'int-quantized', 'mxfp4-pack-quantized', 'nvfp4-pack-quantized',
  'mixed-precision', 'dense', 'marlin-24', 'local', 'static', 'weight', 'dynamic', 're:(', 're:[', 're:.*', 're:model.*', 'Linear',
  'lm_head', 'compressed-tensors', 'gptq', '0.17.0', '0.18.0', 'x', [], {}, [null], [1], ['Linear'], ['re:('], { a: 1 }, { num_bits: 4 },
];

function mutateString(r: Rng, s: string): string {
  const i = r.nextInt(s.length + 1);
  switch (r.nextInt(3)) {
    case 0: return s.slice(0, i) + String.fromCharCode(32 + r.nextInt(95)) + s.slice(i);
    case 1: return s.slice(0, i) + s.slice(i + 1);
    default: return s.slice(0, i) + String.fromCharCode(32 + r.nextInt(95)) + s.slice(i + 1);
  }
}

/** One mutation of a safetensors header; returns a description, or sets `lenDelta`/`text` effects through `fx`. */
function mutateHeader(r: Rng, h: Obj, fx: { lenDelta: number; indent: boolean; cut: number }): string {
  const tensors = h.pairs.filter(([k]) => k !== '__metadata__');
  const [name, entry] = pick(r, tensors) as [string, Obj];
  const field = (k: string) => entry.pairs.find(([f]) => f === k);
  switch (r.nextInt(12)) {
    case 0: {
      const f = field('dtype');
      const old = f?.[1];
      const sib = old === 'F16' ? 'BF16' : old === 'BF16' ? 'F16' : null; // undetectable by construction (see above)
      const d = pick(r, DTYPES.filter((x) => x !== sib));
      if (f) f[1] = d;
      return `${name}.dtype=${JSON.stringify(d)}`;
    }
    case 1: {
      const f = field('shape');
      if (!f || !Array.isArray(f[1])) return 'noop';
      const s = [...(f[1] as number[])];
      const op = r.nextInt(9);
      if (op === 0) s.reverse();
      else if (op === 1 && s.length) s[r.nextInt(s.length)] += pick(r, [-1, 1, 2, -2]);
      else if (op === 2 && s.length === 2 && s[1] % 2 === 0) (s[0] *= 2), (s[1] /= 2);
      else if (op === 3) s.push(1);
      else if (op === 4) s.unshift(1);
      else if (op === 5) s.pop();
      else if (op === 6 && s.length) s[r.nextInt(s.length)] = pick(r, [-1, 1.5, 2 ** 53, '4', null, 0]) as number;
      else if (op === 7) f[1] = pick(r, [null, 'x', {}, [], [[1]]]);
      else s.splice(0, s.length, s.reduce((a, b) => a * b, 1));
      if (op !== 7) f[1] = s;
      return `${name}.shape=${JSON.stringify(f[1])}`;
    }
    case 2: {
      const f = field('data_offsets');
      if (!f || !Array.isArray(f[1])) return 'noop';
      const [b, e] = f[1] as number[];
      const k = pick(r, [1, 2, 4, 8, 64, 256, -1, -4, -8, -256]);
      const v = pick(r, [[b + k, e + k], [b, e + k], [b + k, e], [e, b], [b], [b, e, 0], [String(b), e], [-1, e], [b, 2 ** 60], null, [b + 0.5, e]]);
      f[1] = v;
      return `${name}.data_offsets=${JSON.stringify(v)}`;
    }
    case 3: {
      const idx = h.pairs.findIndex(([k]) => k === name);
      const n = pick(r, [pick(r, tensors)[0], `${name}x`, mutateString(r, name), '', '__metadata__']);
      h.pairs[idx][0] = n;
      return `rename ${name} -> ${JSON.stringify(n)}`;
    }
    case 4:
      h.pairs.splice(h.pairs.findIndex(([k]) => k === name), 1);
      return `delete ${name}`;
    case 5: {
      const dup = clone(entry) as Obj;
      if (r.nextInt(2)) mutateHeader(r, new Obj([[name, dup]]), fx);
      h.pairs.splice(r.nextInt(h.pairs.length + 1), 0, [name, dup]);
      return `duplicate ${name}`;
    }
    case 6: {
      const m = h.pairs.find(([k]) => k === '__metadata__');
      const v = pick(r, [null, [], new Obj([['format', 1]]), new Obj([['format', 'pt'], ['x', 'y']]), 'pt', new Obj([['format', 'pt'], ['format', 'pt']])]);
      if (m) m[1] = v;
      else h.pairs.unshift(['__metadata__', v]);
      return `__metadata__=${toText(v)}`;
    }
    case 7: {
      const k = pick(r, ['foo', 'dtype', 'shape', 'data_offsets', 'offsets']);
      entry.pairs.push([k, pick(r, POOL)]);
      return `${name}.${k} added`;
    }
    case 8:
      fx.lenDelta = pick(r, [1, 2, 3, 4, 7, 8, 16, -1, -2, -3, -4, -7, -8]);
      return `header length ${fx.lenDelta > 0 ? '+' : ''}${fx.lenDelta}`;
    case 9:
      fx.indent = true;
      return 'reformatted';
    case 10:
      fx.cut = 1 + r.nextInt(20);
      return `header text cut by ${fx.cut}`;
    default: {
      // Reorder entries: the same header, only in another order.
      h.pairs.sort(() => r.nextInt(3) - 1);
      return 'reordered';
    }
  }
}

/** Every [container, key] inside a JSON tree, for quantization_config mutations. */
function slots(v: unknown, out: [Obj | unknown[], number][] = []): [Obj | unknown[], number][] {
  if (v instanceof Obj) v.pairs.forEach((p, i) => (out.push([v, i]), slots(p[1], out)));
  else if (Array.isArray(v)) v.forEach((x, i) => (out.push([v, i]), slots(x, out)));
  return out;
}
const get = (c: Obj | unknown[], i: number) => (c instanceof Obj ? c.pairs[i][1] : c[i]);
const set = (c: Obj | unknown[], i: number, v: unknown) => (c instanceof Obj ? (c.pairs[i][1] = v) : (c[i] = v));
const keyOf = (c: Obj | unknown[], i: number) => (c instanceof Obj ? c.pairs[i][0] : `[${i}]`);

function mutateQc(r: Rng, qc: Obj): string {
  const all = slots(qc);
  const [c, i] = pick(r, all);
  const k = keyOf(c, i);
  switch (r.nextInt(7)) {
    case 0:
    case 1: {
      const v = clone(toTree(pick(r, POOL)));
      set(c, i, v);
      return `${k}=${toText(v)}`;
    }
    case 2:
      if (c instanceof Obj) c.pairs.splice(i, 1);
      else c.splice(i, 1);
      return `delete ${k}`;
    case 3: {
      const v = get(c, i);
      if (typeof v !== 'string') return 'noop';
      const s = mutateString(r, v);
      set(c, i, s);
      return `${k}=${JSON.stringify(s)}`;
    }
    case 4: {
      if (!(c instanceof Obj)) return 'noop';
      const v = r.nextInt(2) ? clone(get(c, i)) : clone(toTree(pick(r, POOL)));
      c.pairs.splice(r.nextInt(c.pairs.length + 1), 0, [k as string, v]);
      return `duplicate ${k}=${toText(v)}`;
    }
    case 5: {
      const objs = all.map(([cc, ii]) => get(cc, ii)).filter((x): x is Obj => x instanceof Obj);
      const o = objs.length && r.nextInt(2) ? pick(r, objs) : qc;
      const v = clone(toTree(pick(r, POOL)));
      o.pairs.push([`x_${r.nextInt(1000)}`, v]);
      return `unknown key x_ = ${toText(v)}`;
    }
    default: {
      const v = get(c, i);
      const w = r.nextInt(2) ? [v] : new Obj([['v', v]]);
      set(c, i, w);
      return `${k} wrapped`;
    }
  }
}

// ---- the oracle

function sameWeights(a: EngineWeights, b: EngineWeights): string | null {
  const ka = [...a.weights.keys()].sort().join();
  const kb = [...b.weights.keys()].sort().join();
  if (ka !== kb) return `tensor sets differ: ${ka} vs ${kb}`;
  for (const [k, v] of a.weights) {
    const w = b.weights.get(k)!;
    if (v.length !== w.length) return `${k}: ${v.length} values vs ${w.length}`;
    const x = new Uint32Array(v.buffer, v.byteOffset, v.length);
    const y = new Uint32Array(w.buffer, w.byteOffset, w.length);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return `${k}[${i}]: ${v[i]} vs ${w[i]}`;
  }
  const qa = JSON.stringify([...a.actQuant].sort());
  const qb = JSON.stringify([...b.actQuant].sort());
  if (qa !== qb) return `activation quantization differs: ${qa} vs ${qb}`;
  return null;
}

test(`fuzz: ${CASES} corrupted safetensors headers and quantization_configs (seed ${SEED})`, (t) => {
  const dirs = fixtures.map((f) => {
    const d = join(root, `case-${f.name}`);
    cpSync(f.dir, d, { recursive: true });
    return d;
  });
  const r = new SplitMix64(SEED);
  const counts = { refused: 0, identical: 0, header: 0, qc: 0 };
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  for (let c = 0; c < CASES; c++) {
    const fi = r.nextInt(fixtures.length);
    const f = fixtures[fi];
    const dir = dirs[fi];
    const log: string[] = [];
    const nMut = 1 + r.nextInt(3);
    const fuzzQc = f.config !== null && r.nextInt(2) === 1;
    let qcText: string | null = null;
    if (fuzzQc) {
      counts.qc++;
      const cfg = clone(f.config) as Obj;
      const qc = cfg.pairs.find(([k]) => k === 'quantization_config')![1] as Obj;
      for (let m = 0; m < nMut; m++) log.push(mutateQc(r, qc));
      qcText = toText(cfg, r.nextInt(2) === 1);
      writeFileSync(join(dir, 'config.json'), qcText);
      writeFileSync(join(dir, 'model.safetensors'), readFileSync(join(f.dir, 'model.safetensors')));
    } else {
      counts.header++;
      const h = clone(f.header) as Obj;
      const fx = { lenDelta: 0, indent: false, cut: 0 };
      for (let m = 0; m < nMut; m++) log.push(mutateHeader(r, h, fx));
      let text = toText(h, fx.indent);
      if (fx.cut) text = text.slice(0, Math.max(0, text.length - fx.cut));
      const hb = Buffer.from(text);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(Math.max(0, hb.length + fx.lenDelta)));
      writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([len, hb, f.data]));
      if (f.config) writeFileSync(join(dir, 'config.json'), readFileSync(join(f.dir, 'config.json')));
    }
    const where = () => `seed ${SEED} case ${c} (${f.name}, ${fuzzQc ? 'quantization_config' : 'header'}): ${log.join('; ')}`;
    let got: EngineWeights;
    try {
      got = loadEngineWeights(dir);
    } catch (e) {
      if (!(e instanceof UserError)) assert.fail(`${where()}: not a UserError: ${(e as Error)?.stack ?? e}`);
      assert.equal(e.exitCode, 2, where());
      assert.ok(!e.message.includes('\n') && e.message.length > 0 && e.message.length <= 1000, `${where()}: message is not one line: ${JSON.stringify(e.message)}`);
      counts.refused++;
      continue;
    }
    const diff = sameWeights(got, f.expected);
    if (diff) assert.fail(`${where()}: accepted with different numbers: ${diff}${qcText ? `\nconfig.json: ${qcText.slice(0, 3000)}` : ''}`);
    counts.identical++;
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  t.diagnostic(`${CASES} cases in ${seconds.toFixed(1)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU: ${counts.refused} refused, ${counts.identical} identical; ${counts.header} header, ${counts.qc} quantization_config`);
  // The generator must reach both outcomes and both kinds of input, or the test proves little.
  assert.ok(counts.refused > CASES / 4 && counts.identical > CASES / 50, JSON.stringify(counts));
  assert.ok(counts.qc > CASES / 5 && counts.header > CASES / 5, JSON.stringify(counts));
});
