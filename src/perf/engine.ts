/**
 * `bench perf --only engine`: scoring throughput of the ONNX engine on windows of held-out
 * TinyStories text (stories 501-1000 of the bundled file, tokenized with the model's
 * tokenizer), measured with tinybench, and the fraction of the machine's float32 GEMM rate
 * that implies. The reference rate is a large onnxruntime MatMul (same threads) timed in
 * the same run; a plain JS typed-array multiply-add loop is reported as a second reference.
 */
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { Bench } from 'tinybench';
import type { ModelConfig } from '../checkpoint/config.ts';
import { loadTokenizer } from '../checkpoint/tokenizer.ts';
import { UserError } from '../errors.ts';
import { OnnxEngine } from '../engines/onnx/engine.ts';
import { GraphBuilder } from '../engines/onnx/graph.ts';
import { DT } from '../engines/onnx/proto.ts';
import type { LoglikelihoodRequest } from '../engines/engine.ts';
import type { PerfOptions, PerfReport } from './registry.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
export const STORIES_MODEL = `${ROOT}models/stories260k`;
export const STORIES_TEXT = `${ROOT}suites/data/tinystories_validation_first1000.txt`;

/**
 * Model FLOPs per scored token: 2 × parameters in matmuls (every Linear and the lm_head),
 * plus causal attention 2 × 2 × heads × head_dim × the mean context (window + 1) / 2.
 * (The graph computes the full masked square, about twice the useful attention FLOPs;
 * this counts the useful ones, as MFU does.)
 */
export function flopsPerToken(cfg: ModelConfig, window: number): { matmul: number; attention: number; total: number } {
  const q = cfg.numHeads * cfg.headDim;
  const kv = cfg.numKvHeads * cfg.headDim;
  const perLayer = cfg.hiddenSize * (q + 2 * kv) + q * cfg.hiddenSize + 3 * cfg.hiddenSize * cfg.intermediateSize;
  const matmul = 2 * (cfg.numLayers * perLayer + cfg.vocabSize * cfg.hiddenSize);
  const attention = cfg.numLayers * 4 * cfg.numHeads * cfg.headDim * ((window + 1) / 2);
  return { matmul, attention, total: matmul + attention };
}

/** Stories 501..1000 (1-based) of the bundled file, separated by `<|endoftext|>` lines. */
export function heldOutStories(path = STORIES_TEXT): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UserError(`${path}: missing; the engine benchmark reads the bundled TinyStories text`);
  }
  const stories = text.split(/^<\|endoftext\|>$/m).map((s) => s.trim()).filter((s) => s.length > 0);
  if (stories.length < 1000) throw new UserError(`${path}: expected 1000 stories separated by <|endoftext|> lines, found ${stories.length}`);
  return stories.slice(500, 1000);
}

interface Timing {
  meanMs: number;
  rmePercent: number;
  samples: number;
}

async function time(name: string, fn: () => Promise<unknown> | unknown, quick: boolean): Promise<Timing> {
  const bench = new Bench({ time: quick ? 300 : 2000, warmupTime: quick ? 50 : 300, iterations: quick ? 3 : 10, throws: true });
  bench.add(name, fn);
  await bench.run();
  const r = bench.tasks[0].result;
  if (r.state !== 'completed') throw new Error(`benchmark ${name} did not complete (${r.state})`);
  return { meanMs: r.latency.mean, rmePercent: r.latency.rme, samples: r.latency.samplesCount };
}

/** Float32 GEMM rate of onnxruntime on this machine: an n×n by n×n MatMul. */
async function gemmReference(n: number, threads: number, quick: boolean): Promise<{ gflops: number; n: number; timing: Timing }> {
  const g = new GraphBuilder();
  const a = g.input('a', DT.FLOAT, [n, n]);
  const w = new Float32Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  g.output('y', g.op('MatMul', [a, g.weight('w', [n, n], w)]), DT.FLOAT, [n, n]);
  const s = await ort.InferenceSession.create(g.build(), { intraOpNumThreads: threads, interOpNumThreads: 1, logSeverityLevel: 3 });
  const feeds = { a: new ort.Tensor('float32', w.slice(), [n, n]) };
  const timing = await time('gemm', async () => (await s.run(feeds)).y.dispose(), quick);
  await s.release();
  return { gflops: (2 * n ** 3) / (timing.meanMs / 1000) / 1e9, n, timing };
}

/** A plain single-threaded JS multiply-add loop over Float32Arrays (2 FLOPs per element). */
async function jsLoopReference(quick: boolean): Promise<{ gflops: number; timing: Timing }> {
  const n = 1 << 16;
  const x = new Float32Array(n).fill(1.0001);
  const y = new Float32Array(n);
  const reps = 64;
  const timing = await time('js-fma', () => {
    for (let r = 0; r < reps; r++) for (let i = 0; i < n; i++) y[i] = y[i] * 0.5 + x[i];
  }, quick);
  return { gflops: (2 * n * reps) / (timing.meanMs / 1000) / 1e9, timing };
}

export async function perfEngine(opts: PerfOptions, modelDir = STORIES_MODEL): Promise<PerfReport> {
  const engine = await OnnxEngine.open(modelDir, { threads: opts.threads, batchSize: opts.batchSize });
  try {
    const cfg = engine.config;
    const window = Math.min(256, engine.info.maxLength);
    const tok = await loadTokenizer(modelDir);
    opts.log(`engine perf: tokenizing TinyStories stories 501-1000`);
    const stream: number[] = [];
    for (const s of heldOutStories()) stream.push(...tok.encode(s, { addBos: true }));
    // Consecutive windows of window+1 tokens: the first is context, the rest are scored.
    const nWindows = Math.floor((stream.length - 1) / window);
    if (nWindows < opts.batchSize) throw new UserError(`only ${nWindows} windows of ${window} tokens in the text; lower --batch-size`);
    const windows: LoglikelihoodRequest[] = [];
    for (let i = 0; i < nWindows; i++) {
      const w = stream.slice(i * window, i * window + window + 1);
      windows.push({ context: w.slice(0, 1), continuation: w.slice(1) });
    }
    let next = 0;
    const tokensPerCall = opts.batchSize * window;
    opts.log(`engine perf: ${nWindows} windows of ${window} tokens, batch ${opts.batchSize}, threads ${opts.threads}`);
    const engineTiming = await time('engine', async () => {
      const batch = [];
      for (let b = 0; b < opts.batchSize; b++) batch.push(windows[next++ % nWindows]);
      await engine.loglikelihood(batch);
    }, opts.quick);
    opts.log('engine perf: reference GEMM and JS loop');
    const gemm = await gemmReference(opts.quick ? 512 : 1024, opts.threads, opts.quick);
    const js = await jsLoopReference(opts.quick);
    const tokensPerSecond = tokensPerCall / (engineTiming.meanMs / 1000);
    const flops = flopsPerToken(cfg, window);
    const achievedGflops = (tokensPerSecond * flops.total) / 1e9;
    const data = {
      model: modelDir,
      params: { batchSize: opts.batchSize, threads: opts.threads, window, tokensPerCall },
      tokensPerSecond,
      engine: engineTiming,
      flopsPerToken: flops,
      achievedGflops,
      reference: { kind: `onnxruntime MatMul ${gemm.n}x${gemm.n}x${gemm.n} float32, same threads`, gflops: gemm.gflops, timing: gemm.timing },
      fractionOfGemm: achievedGflops / gemm.gflops,
      jsLoop: { kind: 'single-thread JS Float32Array multiply-add loop', gflops: js.gflops, fraction: achievedGflops / js.gflops },
    };
    const f = (x: number, d = 3) => x.toPrecision(d);
    return {
      name: 'engine',
      lines: [
        `engine: ${f(tokensPerSecond)} tokens/s (batch ${opts.batchSize} × window ${window}, threads ${opts.threads}; ${f(engineTiming.meanMs)} ms/call ±${f(engineTiming.rmePercent, 2)}%, ${engineTiming.samples} calls)`,
        `engine: ${f(flops.total / 1e6)} MFLOP/token (matmul ${f(flops.matmul / 1e6)}, attention ${f(flops.attention / 1e6)}) -> ${f(achievedGflops)} GFLOP/s`,
        `engine: reference ${data.reference.kind}: ${f(gemm.gflops)} GFLOP/s -> engine at ${f(100 * data.fractionOfGemm)}% of it`,
        `engine: second reference, ${data.jsLoop.kind}: ${f(js.gflops)} GFLOP/s (engine = ${f(data.jsLoop.fraction)}×)`,
      ],
      data,
    };
  } finally {
    await engine.close();
  }
}
