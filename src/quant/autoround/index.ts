/**
 * AutoRound (SignRound) on the embedded path: block-wise reconstruction of every decoder
 * layer of a Llama-family checkpoint, one layer at a time (reference/autoround.md §3-4).
 * Returns the quantized layers in the same shape as the RTN quantizer, plus a run record.
 */
import { UserError } from '../../errors.ts';
import { readModelConfig, linearNames, type ModelConfig } from '../../checkpoint/config.ts';
import { CheckpointTensors } from '../../checkpoint/tensors.ts';
import type { Scheme } from '../schemes.ts';
import { absMax, fusedGlobalScale, type QuantizedWeight, type ScaleDtype } from '../formats/index.ts';
import { fusionKey, readDecoderLinears, selectLayers, type LayerWeight, type QuantizedLayers } from '../rtn/index.ts';
import { buildCalibration } from '../calibration.ts';
import { blockShape, type ActQuant, type BlockParams } from './block.ts';
import { BlockProblem, tuneBlock } from './optimize.ts';
import { BlockPool, sharedF32 } from './pool.ts';
import { availableParallelism } from 'node:os';
import { formatsQuantize, makeQLinear, type QLinear } from './qdq.ts';
import { autoLr, getRecipe, type Recipe } from './recipes.ts';

export { RECIPES, getRecipe, type Recipe } from './recipes.ts';

export interface AutoRoundOptions {
  seed?: number;
  minmaxLr?: number;
  enableMinmaxTuning?: boolean;
  enableQuantedInput?: boolean;
  notUseBestMse?: boolean;
  gradientAccumulateSteps?: number;
  ignore?: readonly string[];
  skipUnaligned?: boolean;
  /** Also report the block-output MSE of RTN and of the result over all calibration samples. */
  measureMse?: boolean;
  /** Only the first n blocks (tests, benchmarks); the rest are not quantized. */
  maxBlocks?: number;
  calibrationFile?: string;
  /** Threads for the per-sample work (default: the machine's cores, at most 8). Results do not depend on it. */
  threads?: number;
  /** Integer formats: dtype of the stored scales (default F16, auto-round's). */
  scaleDtype?: ScaleDtype;
}

export interface AutoRoundProgress {
  block: number;
  blocks: number;
  iter: number;
  iters: number;
  loss: number;
}

export interface AutoRoundRecord {
  recipe: Recipe & { lr: number; minmaxLr: number; seed: number };
  seqlenCapped: boolean;
  requestedSeqlen: number;
  bestLossPerBlock: number[];
  bestIterPerBlock: number[];
  /** Loss of the first iteration (RTN parameters, first batch). */
  firstLossPerBlock: number[];
  secondsPerBlock: number[];
  peakMemoryMB: number;
  /** With measureMse: block-output MSE over all calibration samples, RTN vs AutoRound. */
  rtnMsePerBlock?: number[];
  autoroundMsePerBlock?: number[];
  /** Calibrated max |input| per quantized layer (static activation scales, NVFP4 input global scale). */
  actMax: Record<string, number>;
}

export interface AutoRoundResult extends QuantizedLayers {
  record: AutoRoundRecord;
}

function blockParams(ckpt: CheckpointTensors, cfg: ModelConfig, i: number, weights: Map<string, LayerWeight>): BlockParams {
  const p = `model.layers.${i}`;
  const opt = (n: string): Float32Array | null => (ckpt.has(n) ? ckpt.readFloat32(n) : null);
  const req = (n: string): Float32Array => {
    if (!ckpt.has(n)) throw new UserError(`${ckpt.dir}: missing tensor '${n}'`);
    return ckpt.readFloat32(n);
  };
  return {
    ln1: req(`${p}.input_layernorm.weight`),
    ln2: req(`${p}.post_attention_layernorm.weight`),
    qNorm: cfg.qkNorm ? req(`${p}.self_attn.q_norm.weight`) : null,
    kNorm: cfg.qkNorm ? req(`${p}.self_attn.k_norm.weight`) : null,
    bias: ['q', 'k', 'v'].map((x) => (cfg.attentionBias ? opt(`${p}.self_attn.${x}_proj.bias`) : null)),
    W: linearNames(i).map((n) => weights.get(n)!.w),
  };
}

export async function autoRound(
  modelDir: string,
  scheme: Scheme,
  recipeIn: Recipe | string,
  options: AutoRoundOptions = {},
  onProgress?: (p: AutoRoundProgress) => void,
): Promise<AutoRoundResult> {
  if (scheme.weights.kind === 'none') throw new UserError(`scheme ${scheme.name} is not quantized; there is nothing for AutoRound to do`);
  const recipe = typeof recipeIn === 'string' ? getRecipe(recipeIn) : recipeIn;
  const cfg = readModelConfig(modelDir);
  const seed = options.seed ?? 42;
  const lr = recipe.lr ?? autoLr(recipe.iters, scheme.weights.bits);
  const minmaxLr = options.minmaxLr ?? lr;
  const s = blockShape(cfg);
  const D = s.hidden;
  const calib = await buildCalibration(modelDir, { seqlen: recipe.seqlen, nsamples: recipe.nsamples, seed, file: options.calibrationFile });
  const n = calib.nsamples, T = calib.seqlen;
  // The block attends over all T positions; a shorter sliding window would change the result.
  if (cfg.slidingWindow !== null && cfg.slidingWindow < T) throw new UserError(`${modelDir}/config.json: sliding_window ${cfg.slidingWindow} is shorter than the calibration seqlen ${T}; lower --seqlen to at most ${cfg.slidingWindow}`);
  const weights = readDecoderLinears(modelDir);
  const names = [...weights.keys()];
  const { quantized, skipped } = selectLayers(names, (x) => weights.get(x)!, scheme.weights, { ignore: options.ignore, skipUnaligned: options.skipUnaligned });
  const qset = new Set(quantized);
  const ckpt = CheckpointTensors.open(modelDir);
  const record: AutoRoundRecord = {
    recipe: { ...recipe, seqlen: T, lr, minmaxLr, seed }, seqlenCapped: calib.seqlenCapped, requestedSeqlen: calib.requestedSeqlen,
    bestLossPerBlock: [], bestIterPerBlock: [], firstLossPerBlock: [], secondsPerBlock: [], peakMemoryMB: 0, actMax: {},
    ...(options.measureMse ? { rtnMsePerBlock: [], autoroundMsePerBlock: [] } : {}),
  };
  const layersOut = new Map<string, QuantizedWeight>();
  const threads = Math.max(1, Math.min(options.threads ?? Math.min(8, availableParallelism()), recipe.batchSize, n));
  const pool = threads > 1 ? await BlockPool.create(threads) : null;
  try {
    // Cached block-0 inputs: token embeddings of the calibration samples.
    const emb = ckpt.readFloat32('model.embed_tokens.weight');
    let Xfp = sharedF32(n * T * D);
    for (let i = 0; i < n * T; i++) {
      const id = calib.ids[i];
      if (id < 0 || id >= cfg.vocabSize) throw new UserError(`token id ${id} outside the vocabulary (${cfg.vocabSize}); tokenizer and model do not match`);
      Xfp.set(emb.subarray(id * D, (id + 1) * D), i * D);
    }
    let Xq: Float32Array = Xfp;
    const blocks = Math.min(cfg.numLayers, options.maxBlocks ?? cfg.numLayers);
    const gas = options.gradientAccumulateSteps ?? 1;
    for (let b = 0; b < blocks; b++) {
      const t0 = performance.now();
      const p = blockParams(ckpt, cfg, b, weights);
      const lnames = linearNames(b);
      // Reference outputs of the float block, and activation ranges for act-quant schemes.
      const fp = new BlockProblem(p, s, lnames.map(() => null), T, null, Float32Array);
      const Yfp = sharedF32(n * T * D);
      const next = options.enableQuantedInput !== false ? sharedF32(n * T * D) : null;
      const bufs = [Xfp, Xq, Yfp, ...(next ? [next] : [])];
      if (pool) await fp.attach(pool, bufs, 1);
      const sites = new Float64Array(4);
      fp.outputs(Xfp, n, Yfp, sites);
      const aq: ActQuant | null = scheme.activations.kind === 'none' ? null : { fmt: scheme.activations, actMax: sites };
      const layers: (QLinear | null)[] = lnames.map((name, i) => {
        if (!qset.has(name)) return null;
        const lw = weights.get(name)!;
        const l = makeQLinear(name, scheme.weights, lw.w, lw.rows, lw.cols, Float32Array);
        if (options.scaleDtype) l.scaleDtype = options.scaleDtype;
        return l;
      });
      if (scheme.weights.kind === 'nvfp4') {
        const groups = new Map<string, QLinear[]>();
        for (const l of layers) if (l) groups.set(fusionKey(l.name) ?? l.name, [...(groups.get(fusionKey(l.name) ?? l.name) ?? []), l]);
        for (const g of groups.values()) {
          const gs = fusedGlobalScale(g.map((l) => absMax(l.w as Float32Array)));
          for (const l of g) l.globalScale = gs;
        }
      }
      [0, 0, 0, 1, 2, 2, 3].forEach((site, i) => { if (layers[i]) record.actMax[lnames[i]] = sites[site]; });
      const Xin = options.enableQuantedInput === false ? Xfp : Xq;
      const pr = new BlockProblem(p, s, layers, T, aq, Float32Array);
      if (pool) await pr.attach(pool, bufs, Math.min(recipe.batchSize, n));
      const mse = (): number => {
        const out = new Float32Array(n * T * D);
        pr.outputs(Xin, n, out);
        let e = 0;
        for (let i = 0; i < out.length; i++) { const d = out[i] - Yfp[i]; e += d * d; }
        return e / out.length;
      };
      if (options.measureMse) { pr.refreshWeights(); record.rtnMsePerBlock!.push(mse()); }
      const res = tuneBlock(pr, Xin, Yfp, n, {
        iters: recipe.iters, lr, minmaxLr, batchSize: recipe.batchSize, gradientAccumulateSteps: gas,
        enableMinmaxTuning: options.enableMinmaxTuning ?? true, notUseBestMse: options.notUseBestMse ?? false, seed: seed + b,
      }, (iter, loss) => onProgress?.({ block: b, blocks, iter, iters: recipe.iters, loss }));
      if (options.measureMse) record.autoroundMsePerBlock!.push(mse());
      for (const l of layers) if (l) layersOut.set(l.name, formatsQuantize(l));
      if (options.enableQuantedInput !== false) {
        pr.outputs(Xq, n, next!);
        Xq = next!;
      }
      Xfp = Yfp;
      record.bestLossPerBlock.push(res.bestLoss);
      record.bestIterPerBlock.push(res.bestIter);
      record.firstLossPerBlock.push(res.firstLoss);
      record.secondsPerBlock.push((performance.now() - t0) / 1000);
      record.peakMemoryMB = Math.max(record.peakMemoryMB, process.memoryUsage().rss / 2 ** 20);
    }
    const done = quantized.filter((x) => layersOut.has(x));
    const notDone = quantized.filter((x) => !layersOut.has(x)).map((name) => ({ name, reason: 'block not tuned (maxBlocks)' }));
    return { layers: layersOut, quantized: done, skipped: [...skipped, ...notDone], record };
  } finally {
    await pool?.close();
    ckpt.close();
  }
}
