/**
 * Model families against transformers (the `eval` tool environment): seeded random models
 * built by scripts/family_models.py from the real Llama-3.2-1B, Qwen3-0.6B, Qwen2.5-0.5B and
 * Mistral-7B-v0.3 configs (scaled down, every switch kept), in a temp dir.
 *   - The ONNX engine's log-probs equal transformers' in float32 on CPU within 1e-4 per token,
 *     for both config layouts (transformers 5 `rope_parameters`, published `rope_theta` +
 *     `rope_scaling`).
 *   - The AutoRound block forward equals transformers' decoder layer within 1e-5.
 *   - Negative controls: dropping one switch (Llama 3 rope scaling, Qwen3's q/k norm, Qwen2's
 *     biases) moves the numbers far past those tolerances, so the checks can fail.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireToolEnv } from '../helpers/toolenv.ts';
import { loadTokenizer } from '../../src/checkpoint/tokenizer.ts';
import { readStories } from '../../src/eval/text.ts';
import { readModelConfig, linearNames, type ModelConfig } from '../../src/checkpoint/config.ts';
import { CheckpointTensors } from '../../src/checkpoint/tensors.ts';
import { OnnxEngine } from '../../src/engines/onnx/engine.ts';
import { blockForward, blockShape, BlockWorkspace, type BlockParams, type BlockShape } from '../../src/quant/autoround/block.ts';
import { autoRound, getRecipe } from '../../src/quant/autoround/index.ts';
import { getScheme } from '../../src/quant/schemes.ts';
import { UserError } from '../../src/errors.ts';

const FAMILIES = ['llama3', 'qwen3', 'qwen2', 'mistral'] as const;
const LOGPROB_TOL = 1e-4;
const BLOCK_TOL = 1e-5;

interface Reference {
  transformers: string;
  torch: string;
  families: Record<string, { ids: number[]; logprobs: number[]; layers: { input: number[]; output: number[] }[] }[]>;
}

let out = '';
let ref: Reference;
let seqs: number[][] = [];

before(async () => {
  const env = await requireToolEnv('eval');
  out = mkdtempSync(join(tmpdir(), 'lowbit-families-'));
  // Two TinyStories stories through stories260k's tokenizer (BOS first), of different lengths
  // so one batch also exercises right padding.
  const tok = await loadTokenizer('models/stories260k');
  const stories = readStories('suites/data/tinystories_validation_first1000.txt');
  seqs = [tok.encode(stories[0]).slice(0, 100), tok.encode(stories[1]).slice(0, 37)];
  writeFileSync(join(out, 'tokens.json'), JSON.stringify(seqs));
  await promisify(execFile)(env.python, ['scripts/family_models.py', '--out', out, '--tokens', join(out, 'tokens.json')], { timeout: 600_000, maxBuffer: 1 << 26 });
  ref = JSON.parse(readFileSync(join(out, 'reference.json'), 'utf8'));
  assert.equal(ref.transformers, '5.25.0');
});

after(() => {
  if (out) rmSync(out, { recursive: true, force: true });
});

/** Largest |ours - transformers'| over every position's full next-token distribution and the target log-probs. */
async function engineDiff(dir: string, family: string): Promise<number> {
  const engine = await OnnxEngine.open(dir, { maxLength: 128, batchSize: 2 });
  try {
    const V = engine.info.vocabSize;
    const res = await engine.topLogprobs(seqs.map((tokens) => ({ tokens, k: V })));
    let worst = 0;
    res.forEach((r, s) => {
      const want = ref.families[family][s];
      assert.deepEqual(want.ids, seqs[s]);
      assert.equal(r.positions, seqs[s].length - 1);
      for (let i = 0; i < r.positions; i++) {
        worst = Math.max(worst, Math.abs(r.targetLogprobs[i] - want.logprobs[i * V + seqs[s][i + 1]]));
        for (let j = 0; j < V; j++) worst = Math.max(worst, Math.abs(r.logprobs[i * V + j] - want.logprobs[i * V + r.ids[i * V + j]]));
      }
    });
    return worst;
  } finally {
    await engine.close();
  }
}

/** A copy of a family's legacy-layout directory with its config.json edited. */
function variant(family: string, edit: (raw: Record<string, unknown>) => void): string {
  const dir = join(out, `${family}-variant-${Math.random().toString(36).slice(2)}`);
  cpSync(join(out, `${family}-legacy`), dir, { recursive: true });
  const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  edit(raw);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(raw));
  return dir;
}

function blockParams(dir: string, cfg: ModelConfig, i: number): BlockParams {
  const ckpt = CheckpointTensors.open(dir);
  try {
    const p = `model.layers.${i}`;
    const r = (n: string) => ckpt.readFloat32(n);
    return {
      ln1: r(`${p}.input_layernorm.weight`),
      ln2: r(`${p}.post_attention_layernorm.weight`),
      qNorm: cfg.qkNorm ? r(`${p}.self_attn.q_norm.weight`) : null,
      kNorm: cfg.qkNorm ? r(`${p}.self_attn.k_norm.weight`) : null,
      bias: ['q', 'k', 'v'].map((x) => (cfg.attentionBias ? r(`${p}.self_attn.${x}_proj.bias`) : null)),
      W: linearNames(i).map((n) => r(`${n}.weight`)),
    };
  } finally {
    ckpt.close();
  }
}

/** Largest |block(x) - transformers' layer output| over every layer and sequence. */
function blockDiff(dir: string, family: string, shape?: (s: BlockShape) => BlockShape, params?: (p: BlockParams) => BlockParams): number {
  const cfg = readModelConfig(dir);
  const s = (shape ?? ((x) => x))(blockShape(cfg));
  let worst = 0;
  for (const sample of ref.families[family]) {
    const T = sample.ids.length;
    const ws = new BlockWorkspace(s, T, Float32Array);
    sample.layers.forEach((layer, i) => {
      const p = (params ?? ((x) => x))(blockParams(dir, cfg, i));
      blockForward(p, s, ws, Float32Array.from(layer.input), 0, null, false);
      assert.equal(layer.output.length, T * s.hidden);
      for (let j = 0; j < T * s.hidden; j++) worst = Math.max(worst, Math.abs(ws.y[j] - layer.output[j]));
    });
  }
  return worst;
}

for (const family of FAMILIES) {
  test(`${family}: both config layouts read as the same model`, () => {
    const a = readModelConfig(join(out, family));
    const b = readModelConfig(join(out, `${family}-legacy`));
    const { raw: _a, ...ca } = a;
    const { raw: _b, ...cb } = b;
    assert.deepEqual(ca, cb);
  });

  test(`${family}: ONNX engine log-probs equal transformers' within ${LOGPROB_TOL} per token`, async (t) => {
    for (const dir of [family, `${family}-legacy`]) {
      const worst = await engineDiff(join(out, dir), family);
      t.diagnostic(`${dir}: max |Δ log-prob| ${worst.toExponential(2)}`);
      assert.ok(worst < LOGPROB_TOL, `${dir}: max |Δ log-prob| ${worst}`);
    }
  });

  test(`${family}: AutoRound block forward equals transformers' decoder layer within ${BLOCK_TOL}`, (t) => {
    const worst = blockDiff(join(out, family), family);
    t.diagnostic(`max |Δ hidden| ${worst.toExponential(2)}`);
    assert.ok(worst < BLOCK_TOL, `max |Δ hidden| ${worst}`);
  });
}

test('the checks can fail: each family switch, dropped, moves the numbers far past the tolerances', async () => {
  // Llama 3 without its rope scaling (the engine's old reading of this config).
  const noScaling = variant('llama3', (raw) => { raw.rope_scaling = null; });
  assert.ok((await engineDiff(noScaling, 'llama3')) > 100 * LOGPROB_TOL);
  assert.ok(blockDiff(join(out, 'llama3'), 'llama3', (s) => ({ ...s, ropeScaling: null })) > 100 * BLOCK_TOL);
  // Llama 3 read with the default theta (rope_parameters not read).
  assert.ok(blockDiff(join(out, 'llama3'), 'llama3', (s) => ({ ...s, theta: 10000 })) > 100 * BLOCK_TOL);
  // Qwen3 without q/k norm, Qwen2 without biases.
  assert.ok(blockDiff(join(out, 'qwen3'), 'qwen3', (s) => ({ ...s, qkNorm: false })) > 100 * BLOCK_TOL);
  assert.ok(blockDiff(join(out, 'qwen2'), 'qwen2', undefined, (p) => ({ ...p, bias: [null, null, null] })) > 100 * BLOCK_TOL);
  // Mistral with a Qwen-sized theta is visibly different too.
  assert.ok(blockDiff(join(out, 'mistral'), 'mistral', (s) => ({ ...s, theta: 10000 })) > 100 * BLOCK_TOL);
});

test('a sliding window shorter than what is scored or calibrated is refused; a longer one is not', async () => {
  const dir = variant('mistral', (raw) => { raw.sliding_window = 16; });
  await assert.rejects(OnnxEngine.open(dir, { maxLength: 32 }), (e: unknown) => e instanceof UserError && /sliding_window 16 shorter than the window 32/.test(e.message));
  await (await OnnxEngine.open(dir, { maxLength: 16 })).close();
  const recipe = getRecipe('light', { iters: 1, nsamples: 2, seqlen: 32, batchSize: 1 });
  await assert.rejects(autoRound(dir, getScheme('W4A16'), recipe, { maxBlocks: 1, threads: 1 }), (e: unknown) => e instanceof UserError && /sliding_window 16 is shorter than the calibration seqlen 32/.test(e.message));
});
