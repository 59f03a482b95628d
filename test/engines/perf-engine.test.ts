/** `bench perf`'s engine benchmark: FLOP accounting, data selection, registry and CLI output (never speed). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readModelConfig } from '../../src/checkpoint/config.ts';
import { CheckpointTensors } from '../../src/checkpoint/tensors.ts';
import { UserError } from '../../src/errors.ts';
import { flopsPerToken, heldOutStories, STORIES_MODEL, STORIES_TEXT } from '../../src/perf/engine.ts';
import { selectBenchmarks } from '../../src/perf/registry.ts';

const haveModel = existsSync(`${STORIES_MODEL}/model.safetensors`);

test('matmul FLOPs per token = 2 × the parameters of every Linear and the (tied) head, counted from the checkpoint', { skip: !haveModel && 'models/stories260k missing' }, () => {
  const cfg = readModelConfig(STORIES_MODEL);
  const ck = CheckpointTensors.open(STORIES_MODEL);
  let linear = 0;
  for (const n of ck.names()) if (/_proj\.weight$/.test(n)) linear += ck.info(n).shape.reduce((a, b) => a * b, 1);
  const head = ck.info(ck.has('lm_head.weight') ? 'lm_head.weight' : 'model.embed_tokens.weight').shape.reduce((a, b) => a * b, 1);
  ck.close();
  const f = flopsPerToken(cfg, 255);
  assert.equal(f.matmul, 2 * (linear + head));
  // Causal attention, mean context (255 + 1) / 2 = 128: QK^T and PV, 2 FLOPs per multiply-add.
  assert.equal(f.attention, cfg.numLayers * 2 * 2 * cfg.numHeads * cfg.headDim * 128);
  assert.equal(f.total, f.matmul + f.attention);
});

test('held-out text is stories 501-1000: 500 stories, none containing the separator', () => {
  const stories = heldOutStories();
  assert.equal(stories.length, 500);
  assert.ok(stories.every((s) => s.length > 0 && !s.includes('<|endoftext|>')));
  // Story 501 is the text after the 500th separator line.
  const parts = readFileSync(STORIES_TEXT, 'utf8').split('\n<|endoftext|>\n');
  assert.equal(stories[0], parts[500].trim());
});

test('the registry selects by name and rejects unknown names with a hint', () => {
  assert.deepEqual(selectBenchmarks(['engine']).map((b) => b.name), ['engine']);
  assert.ok(selectBenchmarks().length >= 1);
  assert.throws(() => selectBenchmarks(['engin']), (e: unknown) => e instanceof UserError && /did you mean 'engine'/.test(e.message));
});

test('bench perf --only engine --quick --json prints one JSON document on stdout', { skip: !haveModel && 'models/stories260k missing' }, () => {
  const out = execFileSync(new URL('../../bin/bench.js', import.meta.url).pathname, ['perf', '--only', 'engine', '--quick', '--json', '--batch-size', '2'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const j = JSON.parse(out);
  const e = j.benchmarks[0];
  assert.equal(e.name, 'engine');
  assert.equal(e.params.batchSize, 2);
  assert.equal(e.params.threads, 1);
  for (const k of ['tokensPerSecond', 'achievedGflops', 'fractionOfGemm']) assert.ok(Number.isFinite(e[k]) && e[k] > 0, `${k} = ${e[k]}`);
  assert.ok(Math.abs(e.achievedGflops - (e.tokensPerSecond * e.flopsPerToken.total) / 1e9) < 1e-9 * e.achievedGflops);
});
