/**
 * Job handlers for the embedded path: native quantizers (RTN, AutoRound) writing
 * compressed-tensors checkpoints, scored in-process by the ONNX engine.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer } from '../checkpoint/tokenizer.ts';
import { openOnnxCheckpoint } from '../engines/onnx/checkpoint.ts';
import { UserError } from '../errors.ts';
import { runSuite, suiteItemCount, suiteTexts } from '../eval/index.ts';
import { buildKldWindows, computeKldBase, loadKldBase, saveKldBase } from '../eval/kld.ts';
import { loadSuite, type KldSuite } from '../matrix/suites.ts';
import { quantizeModel } from '../quant/index.ts';
import type { AutoRoundProgress } from '../quant/autoround/index.ts';
import { perturbWeightScales } from './faults.ts';
import type { Handlers } from './run.ts';

export const KLD_BASE_FILE = 'kld-base.safetensors';

export interface EmbeddedOptions {
  /** onnxruntime threads per engine (default: all cores). */
  threads?: number;
  /** Progress of batches inside a job. */
  onBatch?: (text: string) => void;
  /** Test-only fault injection: multiply one scheme's weight scales (see quant). */
  perturbScales?: { scheme: string; factor: number };
}

function localDir(dir: string | null, what: string): string {
  if (!dir) throw new UserError(`${what}: the embedded engine needs a local model directory; hf: models run with --engine vllm`);
  return dir;
}

export function embeddedHandlers(opts: EmbeddedOptions = {}): Handlers {
  const threads = opts.threads ?? Math.max(1, availableParallelism());
  const progress = (label: string) => (p: { task: string; batch: number; batches: number }) =>
    opts.onBatch?.(`${label}: ${p.task} batch ${p.batch}/${p.batches}`);
  return {
    async quantize(job, ctx) {
      const modelDir = localDir(ctx.modelDir, job.label);
      const rv = job.recipeValues;
      const summary = await quantizeModel(modelDir, job.scheme.name, job.method, {
        out: ctx.outDir,
        overwrite: true,
        groupSize: job.scheme.weights.kind === 'int' ? job.scheme.weights.groupSize : undefined,
        asym: job.scheme.weights.kind === 'int' && !job.scheme.weights.symmetric,
        ...(job.method === 'autoround' && rv
          ? {
              autoround: {
                // models.json owns the recipe table: the job carries the resolved values.
                recipe: { iters: rv.iters, nsamples: rv.nsamples, seqlen: rv.seqlen, batchSize: rv.batchSize, lr: rv.lr },
                options: {
                  seed: job.seed,
                  minmaxLr: rv.minmaxLr ?? undefined,
                  enableQuantedInput: rv.enableQuantedInput,
                  enableMinmaxTuning: rv.enableMinmaxTuning,
                  ...(ctx.model.calibrationPath ? { calibrationFile: ctx.model.calibrationPath } : {}),
                },
                onProgress: (p: AutoRoundProgress) =>
                  opts.onBatch?.(`${job.label}: block ${p.block + 1}/${p.blocks} iter ${p.iter + 1}/${p.iters} loss ${p.loss.toExponential(3)}`),
              },
            }
          : {}),
      });
      const fault = opts.perturbScales && opts.perturbScales.scheme === job.scheme.name ? opts.perturbScales.factor : null;
      if (fault !== null) perturbWeightScales(ctx.outDir, fault);
      return {
        bitsPerWeight: job.bitsPerWeight,
        layers: summary.quantized,
        provenance: { ...(fault !== null ? { fault: { perturbScales: fault } } : {}), tool: 'lowbit-bench', method: job.method, scheme: summary.scheme, groupSize: summary.groupSize, symmetric: summary.symmetric, scaleDtype: summary.scaleDtype, skipped: summary.skipped, record: summary.record ?? null },
      };
    },

    async base(job, ctx) {
      const suite = loadSuite(job.suite.file) as KldSuite;
      if (suite.task !== 'kld') throw new Error(`${job.label}: base distributions exist only for kld suites`);
      const dir = localDir(ctx.modelDir, job.label);
      const tok = await loadTokenizer(dir);
      const { engine } = await openOnnxCheckpoint(dir, { threads, maxLength: suite.params.maxLength });
      try {
        const windows = buildKldWindows(suiteTexts(suite, ctx.limit), tok, suite.params.maxLength);
        const base = await computeKldBase(engine, windows, {
          windowLength: suite.params.maxLength, topK: suite.params.topK, score: suite.params.score,
          batchSize: suite.params.batchSize, task: suite.name, onProgress: progress(job.label),
        });
        saveKldBase(join(ctx.outDir, KLD_BASE_FILE), base, { suite: suite.name });
      } finally {
        await engine.close();
      }
    },

    async evaluate(job, ctx) {
      const suite = loadSuite(job.suite.file);
      const dir = localDir(ctx.checkpointDir, job.label);
      const tok = await loadTokenizer(dir);
      const { engine, quantized } = await openOnnxCheckpoint(dir, { threads, maxLength: suite.params.maxLength });
      try {
        const baseCache = ctx.baseDir ? loadKldBase(join(ctx.baseDir, KLD_BASE_FILE)) : undefined;
        const metrics = await runSuite(suite, engine, tok, { limit: ctx.limit, baseCache, onProgress: progress(job.label) });
        return {
          metrics,
          items: suiteItemCount(suite, ctx.limit),
          provenance: {
            engine: 'onnx',
            threads,
            bos: { addBosDefault: tok.addBosDefault, bosId: tok.bosId, prefixToken: engine.info.prefixToken },
            limit: ctx.limit ?? null,
            quantizedLayers: quantized.length,
          },
        };
      } finally {
        await engine.close();
      }
    },
  };
}
