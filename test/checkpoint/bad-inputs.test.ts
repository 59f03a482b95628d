/**
 * A corpus of bad checkpoint inputs (issue 13, items 3, 6, 7 and inspect of item 8): each
 * one must end in ONE line on stderr naming the problem, exit code 2, no stack trace and
 * nothing on stdout (no number printed). Every case runs the real CLI entry point
 * (`main(argv)`) in-process; the cases marked `spawn` also run as a separate
 * `./bin/bench.js` process, which proves what a user sees.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync, execFileSync } from 'node:child_process';
import { main } from '../../src/cli/main.ts';
import { CheckpointTensors, writeCheckpointTensors } from '../../src/checkpoint/tensors.ts';
import type { TensorToWrite } from '../../src/checkpoint/safetensors.ts';
import { parseModels } from '../../src/matrix/models.ts';
import { quantizeModel } from '../../src/quant/index.ts';
import { UserError } from '../../src/errors.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BENCH = join(ROOT, 'bin', 'bench.js');
const MODEL = join(ROOT, 'models', 'stories260k');
const root = mkdtempSync(join(tmpdir(), 'bad-inputs-'));

// One quantized checkpoint of each family of tensors the reader handles.
const W4 = join(root, 'w4a16');
await quantizeModel(MODEL, 'W4A16', 'rtn', { out: W4, groupSize: 32 });
const FP8 = join(root, 'fp8');
await quantizeModel(MODEL, 'W8A8-FP8', 'rtn', { out: FP8 });
const MX = join(root, 'mxfp4');
await quantizeModel(MODEL, 'MXFP4A16', 'rtn', { out: MX });

let serial = 0;
function copy(src: string): string {
  const d = join(root, `case-${serial++}`);
  cpSync(src, d, { recursive: true });
  return d;
}

function readAll(dir: string): TensorToWrite[] {
  const ck = CheckpointTensors.open(dir);
  try {
    return ck.names().map((n) => ({ name: n, dtype: ck.info(n).dtype, shape: [...ck.info(n).shape], data: ck.readBytes(n) }));
  } finally {
    ck.close();
  }
}

/** Copy `src`, then edit its tensors. */
function withTensors(src: string, edit: (ts: TensorToWrite[]) => void): string {
  const d = copy(src);
  const ts = readAll(d);
  edit(ts);
  writeCheckpointTensors(d, ts);
  return d;
}

const byName = (ts: TensorToWrite[], name: string) => ts.find((t) => t.name === name)!;
function setF32(t: TensorToWrite, i: number, v: number) {
  new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength).setFloat32(i * 4, v, true);
}
function setF16Bits(t: TensorToWrite, i: number, bits: number) {
  new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength).setUint16(i * 2, bits, true);
}

/** Copy `src`, then edit config.json (parsed) or replace its text. */
function withConfig(src: string, edit: ((cfg: any) => void) | string): string {
  const d = copy(src);
  const p = join(d, 'config.json');
  if (typeof edit === 'string') writeFileSync(p, edit);
  else {
    const cfg = JSON.parse(readFileSync(p, 'utf8'));
    edit(cfg);
    writeFileSync(p, JSON.stringify(cfg, null, 2));
  }
  return d;
}
const withQc = (src: string, edit: (qc: any) => void) => withConfig(src, (cfg) => edit(cfg.quantization_config));

/** A sharded copy of stories260k whose index can then be edited. */
function sharded(edit: (index: any, dir: string) => void): string {
  const d = copy(MODEL);
  const ts = readAll(d);
  rmSync(join(d, 'model.safetensors'));
  writeCheckpointTensors(d, ts, { maxShardBytes: 400_000 });
  const p = join(d, 'model.safetensors.index.json');
  const index = JSON.parse(readFileSync(p, 'utf8'));
  edit(index, d);
  writeFileSync(p, JSON.stringify(index, null, 2));
  return d;
}

/** A safetensors file whose header text is given verbatim (data: the original file's). */
function headerText(src: string, edit: (header: string, dataLen: number) => { header: string; extra?: Uint8Array }): string {
  const d = copy(src);
  const p = join(d, 'model.safetensors');
  const bytes = readFileSync(p);
  const n = Number(bytes.readBigUInt64LE(0));
  const { header, extra } = edit(bytes.subarray(8, 8 + n).toString('utf8').trimEnd(), bytes.length - 8 - n);
  const h = Buffer.from(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(p, Buffer.concat([len, h, bytes.subarray(8 + n), extra ?? new Uint8Array(0)]));
  return d;
}

const evalArgs = (dir: string) => ['eval', '--model', dir, '--suite', 'tinystories-ppl', '--limit', '2'];

interface Case {
  what: string;
  /** The CLI arguments (built lazily: cases make their files when they run). */
  args?: () => string[];
  /** Or an in-process call that must throw the UserError (for inputs the CLI reads from fixed places). */
  call?: () => unknown;
  expect: RegExp;
  spawn?: boolean;
}

const cases: Case[] = [
  // ---- item 3: non-finite weights and scales must not score (previously exit 0 with NaN ± NaN)
  { what: 'NaN in a float weight', spawn: true, args: () => evalArgs(withTensors(MODEL, (ts) => setF32(byName(ts, 'model.layers.2.mlp.up_proj.weight'), 100, NaN))),
    // up_proj is [172, 64]: flat index 100 = 1·64 + 36
    expect: /tensor 'model\.layers\.2\.mlp\.up_proj\.weight' has NaN at \[1, 36\]/ },
  { what: '+Inf in a norm weight', args: () => evalArgs(withTensors(MODEL, (ts) => setF32(byName(ts, 'model.norm.weight'), 7, Infinity))),
    expect: /tensor 'model\.norm\.weight' has \+Inf at \[7\]/ },
  { what: 'NaN in an int weight_scale (F16)', spawn: true, args: () => evalArgs(withTensors(W4, (ts) => setF16Bits(byName(ts, 'model.layers.0.self_attn.q_proj.weight_scale'), 3, 0x7e00))),
    // q_proj scales are [64, 64/32]: flat index 3 = 1·2 + 1
    expect: /layer 'model\.layers\.0\.self_attn\.q_proj': tensor 'weight_scale' has NaN at \[1, 1\]/ },
  { what: '-Inf in an int weight_scale (F16)', args: () => evalArgs(withTensors(W4, (ts) => setF16Bits(byName(ts, 'model.layers.1.mlp.down_proj.weight_scale'), 0, 0xfc00))),
    expect: /layer 'model\.layers\.1\.mlp\.down_proj': tensor 'weight_scale' has -Inf at \[0, 0\]/ },
  { what: 'NaN in an FP8 weight_scale (F32)', args: () => evalArgs(withTensors(FP8, (ts) => setF32(byName(ts, 'model.layers.0.mlp.gate_proj.weight_scale'), 5, NaN))),
    expect: /layer 'model\.layers\.0\.mlp\.gate_proj': tensor 'weight_scale' has NaN at \[5, 0\]/ },
  { what: 'NaN code in FP8 weights', args: () => evalArgs(withTensors(FP8, (ts) => (byName(ts, 'model.layers.0.self_attn.k_proj.weight').data[9] = 0x7f))),
    expect: /layer 'model\.layers\.0\.self_attn\.k_proj': tensor 'weight' has NaN \(float8_e4m3fn code 0x7f\) at \[0, 9\]/ },
  { what: 'NaN E8M0 scale in MXFP4', args: () => evalArgs(withTensors(MX, (ts) => (byName(ts, 'model.layers.0.self_attn.v_proj.weight_scale').data[1] = 255))),
    expect: /layer 'model\.layers\.0\.self_attn\.v_proj': tensor 'weight_scale' has NaN( \(E8M0 byte 255\))? at \[0, 1\]|E8M0 scale byte 255 is NaN/ },
  { what: 'scales that overflow float32 when dequantized', args: () => evalArgs(withTensors(FP8, (ts) => setF32(byName(ts, 'model.layers.0.mlp.up_proj.weight_scale'), 0, 3e38))),
    expect: /layer 'model\.layers\.0\.mlp\.up_proj': the dequantized weight has [+-]Inf at \[0, \d+\]; codes times scales overflow float32/ },

  // ---- item 6: stack traces
  { what: 'config_groups.group_0: null', spawn: true, args: () => evalArgs(withQc(W4, (qc) => (qc.config_groups.group_0 = null))),
    expect: /config_groups\.group_0 is null, expected an object with targets and weights/ },
  { what: 'invalid regex in ignore', args: () => evalArgs(withQc(W4, (qc) => qc.ignore.push('re:('))),
    expect: /quantization_config\.ignore\[1\] "re:\(" is not a valid regular expression/ },
  { what: 'non-string in ignore', args: () => evalArgs(withQc(W4, (qc) => qc.ignore.push(7))),
    expect: /quantization_config\.ignore\[1\] is 7, expected a module name or 're:<regex>'/ },
  { what: 'invalid regex in targets', args: () => evalArgs(withQc(W4, (qc) => (qc.config_groups.group_0.targets = ['re:[a-'] ))),
    expect: /config_groups\.group_0\.targets\[0\] "re:\[a-" is not a valid regular expression/ },
  { what: 'non-string in targets', args: () => evalArgs(withQc(W4, (qc) => (qc.config_groups.group_0.targets = [null]))),
    expect: /config_groups\.group_0\.targets\[0\] is null, expected a module name/ },
  { what: "--ignore 're:(' on the command line", spawn: true, args: () => ['quantize', '--model', MODEL, '--scheme', 'W4A16', '--method', 'rtn', '--group-size', '32', '--ignore', 're:(', '--out', join(root, 'never-written')],
    expect: /--ignore ['"]re:\(['"]: not a valid regular expression/ },
  { what: 'non-string weight_map value', args: () => evalArgs(sharded((ix) => (ix.weight_map['model.norm.weight'] = 3))),
    expect: /weight_map\['model\.norm\.weight'\] is 3, expected a shard file name/ },
  { what: 'model.safetensors that is a directory', args: () => {
      const d = copy(MODEL);
      rmSync(join(d, 'model.safetensors'));
      mkdirSync(join(d, 'model.safetensors'));
      return evalArgs(d);
    }, expect: /model\.safetensors: is a directory, expected a safetensors file/ },

  // ---- item 7: bad checkpoints that used to be accepted
  { what: 'F32 norm declared I32', spawn: true, args: () => evalArgs(withTensors(MODEL, (ts) => (byName(ts, 'model.layers.0.input_layernorm.weight').dtype = 'I32'))),
    expect: /tensor 'model\.layers\.0\.input_layernorm\.weight' is I32, expected a float dtype/ },
  { what: '[256,128] embeddings for [512,64]', args: () => evalArgs(withTensors(MODEL, (ts) => (byName(ts, 'model.embed_tokens.weight').shape = [256, 128]))),
    expect: /tensor 'model\.embed_tokens\.weight' has shape \[256, 128\], config\.json implies \[512, 64\]/ },
  { what: 'a transposed Linear with the right element count', args: () => evalArgs(withTensors(MODEL, (ts) => (byName(ts, 'model.layers.3.mlp.down_proj.weight').shape = [172, 64]))),
    expect: /tensor 'model\.layers\.3\.mlp\.down_proj\.weight' has shape \[172, 64\], config\.json implies \[64, 172\]/ },
  { what: 'unknown format', args: () => evalArgs(withQc(W4, (qc) => (qc.format = 'pack-quantized-v9'))),
    expect: /quantization_config\.format "pack-quantized-v9" is not one of dense, / },
  { what: 'known format that does not store these weights', args: () => evalArgs(withQc(W4, (qc) => { qc.format = 'float-quantized'; delete qc.config_groups.group_0.format; })),
    expect: /format 'float-quantized' does not store int weights \(expected pack-quantized\)|weights int4 are not float8/ },
  { what: 'unknown strategy', args: () => evalArgs(withQc(W4, (qc) => (qc.config_groups.group_0.weights.strategy = 'grouped'))),
    expect: /config_groups\.group_0\.weights\.strategy "grouped" is not one of tensor, channel, group/ },
  { what: 'unknown quantization_status', args: () => evalArgs(withQc(W4, (qc) => (qc.quantization_status = 'compresed'))),
    expect: /quantization_status "compresed" is not one of initialized, calibration, frozen, compressed/ },
  { what: 'quantization_status frozen', args: () => evalArgs(withQc(W4, (qc) => (qc.quantization_status = 'frozen'))),
    expect: /quantization_status 'frozen': the weights are not stored compressed/ },
  { what: 'unknown type', args: () => evalArgs(withQc(W4, (qc) => (qc.config_groups.group_0.weights.type = 'fixed'))),
    expect: /config_groups\.group_0\.weights\.type "fixed" is not one of int, float/ },
  // Found by the fuzz (seed 20261208, case 3075): dynamic activations leave no tensor behind,
  // so only the declared format can show that input_activations was dropped.
  { what: 'input_activations deleted from a W8A8-FP8 (dynamic) checkpoint', args: () => evalArgs(withQc(FP8, (qc) => delete qc.config_groups.group_0.input_activations)),
    expect: /format 'float-quantized' implies quantized input activations, but the group has none/ },
  { what: 'a stray input_global_scale on a weight-only layer', args: () => evalArgs(withTensors(W4, (ts) => {
      ts.push({ name: 'model.layers.0.self_attn.q_proj.input_global_scale', dtype: 'F32', shape: [1], data: new Uint8Array(new Float32Array([1]).buffer) });
    })), expect: /q_proj': has 'input_global_scale' but the group has no NVFP4 input activations/ },
  { what: 'num_bits as a string', args: () => evalArgs(withQc(W4, (qc) => (qc.config_groups.group_0.weights.num_bits = '4'))),
    expect: /weights\.num_bits is "4", expected an integer 1\.\.8/ },
  { what: 'duplicate tensor in a safetensors header (second entry points at NaN data)', spawn: true,
    args: () => ['inspect', join(headerText(MODEL, (h, dataLen) => ({
      header: `${h.slice(0, -1)},"model.norm.weight":{"dtype":"F32","shape":[64],"data_offsets":[${dataLen},${dataLen + 256}]}}`,
      extra: new Uint8Array(new Float32Array(64).fill(NaN).buffer),
    })), 'model.safetensors')],
    expect: /invalid safetensors header: duplicate key "model\.norm\.weight" at \$/ },
  { what: 'duplicate key inside a tensor entry', args: () => evalArgs(headerText(MODEL, (h) => ({ header: h.replace('"dtype":"F32"', '"dtype":"F32","dtype":"I32"') }))),
    expect: /duplicate key "dtype" at \$\["model\.embed_tokens\.weight"\]/ },
  { what: 'duplicate key in config.json', args: () => evalArgs(withConfig(MODEL, readFileSync(join(MODEL, 'config.json'), 'utf8').replace('"hidden_size": 64,', '"hidden_size": 64, "hidden_size": 32,'))),
    expect: /config\.json: duplicate key "hidden_size" at \$/ },
  { what: 'duplicate key in quantization_config', args: () => evalArgs(withConfig(W4, readFileSync(join(W4, 'config.json'), 'utf8').replace('"quantization_status": "compressed"', '"quantization_status": "compressed", "quantization_status": "frozen"'))),
    expect: /duplicate key "quantization_status" at \$\.quantization_config/ },
  { what: 'duplicate key in model.safetensors.index.json', args: () => {
      const d = sharded(() => {});
      const p = join(d, 'model.safetensors.index.json');
      writeFileSync(p, readFileSync(p, 'utf8').replace('"weight_map": {', '"weight_map": {\n    "model.norm.weight": "model-00001-of-00003.safetensors",'));
      return evalArgs(d);
    }, expect: /model\.safetensors\.index\.json: duplicate key "model\.norm\.weight" at \$\.weight_map/ },
  { what: 'duplicate alias in models.json',
    call: () => parseModels('{"models": {"tiny": {"source": "./a"}, "tiny": {"source": "./b"}}}', 'models.json', root),
    expect: /^models\.json: duplicate key "tiny" at \$\.models/ },
  { what: 'a number that overflows a double in config.json', args: () => evalArgs(withConfig(MODEL, readFileSync(join(MODEL, 'config.json'), 'utf8').replace('"rope_theta": 10000', '"rope_theta": 1e400'))),
    expect: /number 1e400 is out of range \(not a finite double\) at \$/ },
  { what: 'an absolute shard path (/etc/passwd)', spawn: true, args: () => evalArgs(sharded((ix) => (ix.weight_map['model.norm.weight'] = '/etc/passwd'))),
    expect: /shard "\/etc\/passwd" is an absolute path/ },
  { what: "a shard path escaping with '..'", args: () => evalArgs(sharded((ix) => (ix.weight_map['model.norm.weight'] = '../case-0/model.safetensors'))),
    expect: /shard "\.\.\/case-0\/model\.safetensors" uses '\.\.' to leave the checkpoint directory/ },
  { what: 'a shard that is a symlink out of the checkpoint', args: () => evalArgs(sharded((ix, d) => {
      symlinkSync(join(MODEL, 'model.safetensors'), join(d, 'linked.safetensors'));
      for (const k of Object.keys(ix.weight_map)) ix.weight_map[k] = 'linked.safetensors';
      rmSync(join(d, 'model-00001-of-00003.safetensors'));
      rmSync(join(d, 'model-00002-of-00003.safetensors'));
      rmSync(join(d, 'model-00003-of-00003.safetensors'));
    })), expect: /shard "linked\.safetensors" resolves to .*, outside the checkpoint directory/ },
  { what: 'quantized tensors on a module that is not a Linear of the model', args: () => evalArgs(withTensors(W4, (ts) => {
      const t = byName(ts, 'model.layers.0.self_attn.q_proj.weight_scale');
      ts.push({ ...t, name: 'model.layers.0.self_attn.rotary.weight_scale' });
    })), expect: /layer 'model\.layers\.0\.self_attn\.rotary': has quantized tensors but is not a Linear of this llama model/ },

  // ---- item 8: inspect must not block on a FIFO or read a device
  { what: 'inspect a FIFO', spawn: true, args: () => {
      const p = join(root, `fifo-${serial++}`);
      execFileSync('mkfifo', [p]);
      return ['inspect', p];
    }, expect: /fifo-\d+: is a FIFO \(named pipe\), expected a safetensors file/ },
  { what: 'inspect a character device', args: () => ['inspect', '/dev/zero'], expect: /\/dev\/zero: is a device, expected a safetensors file/ },
];

/** Run the CLI in this process, capturing what it writes. */
async function runInProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  // The CLI writes strings; the test runner's own reports to its parent are binary frames and pass through.
  process.stdout.write = ((s: string | Uint8Array, ...rest: any[]) => (typeof s === 'string' ? (out.push(s), true) : w1(s, ...rest))) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array, ...rest: any[]) => (typeof s === 'string' ? (err.push(s), true) : w2(s, ...rest))) as typeof process.stderr.write;
  process.exitCode = undefined;
  let code: number;
  try {
    code = await main(args);
  } catch (e) {
    code = -1;
    err.push(`UNCAUGHT ${(e as Error).stack}`);
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
    process.exitCode = undefined;
  }
  return { code, stdout: out.join(''), stderr: err.join('') };
}

function assertOneLineError(r: { code: number | null; stdout: string; stderr: string }, expect: RegExp): string {
  assert.equal(r.code, 2, `exit code ${r.code}, stderr: ${r.stderr}`);
  assert.equal(r.stdout, '', 'nothing may be printed as a result');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0], /^bench: error: /);
  assert.match(lines[0], expect);
  assert.doesNotMatch(r.stderr, /\n\s+at |UNCAUGHT/);
  return lines[0];
}

for (const c of cases) {
  test(`bad input: ${c.what}`, async (t) => {
    if (c.call) {
      assert.throws(c.call, (e: unknown) => {
        assert.ok(e instanceof UserError, `expected UserError, got ${(e as Error)?.stack}`);
        assert.equal(e.exitCode, 2);
        assert.ok(!e.message.includes('\n'));
        assert.match(e.message, c.expect);
        return true;
      });
      return;
    }
    const args = c.args!();
    t.diagnostic(assertOneLineError(await runInProcess(args), c.expect).replaceAll(root, '$TMP'));
    if (c.spawn) {
      const r = spawnSync(process.execPath, [BENCH, ...args], { encoding: 'utf8', cwd: ROOT, timeout: 60_000 });
      assert.equal(r.signal, null, `killed by ${r.signal} (blocked?)`);
      assertOneLineError({ code: r.status, stdout: r.stdout, stderr: r.stderr }, c.expect);
    }
  });
}

test('the corpus covers good files too: the untouched checkpoints still evaluate', async () => {
  for (const d of [MODEL, W4, FP8, MX]) {
    const r = await runInProcess([...evalArgs(d), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const ppl = JSON.parse(r.stdout).metrics.find((m: { metric: string }) => m.metric === 'token_perplexity').value;
    assert.ok(Number.isFinite(ppl) && ppl > 1, `${d}: token perplexity ${ppl}`);
  }
});
