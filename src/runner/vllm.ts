/**
 * Job handlers for the GPU path: quantize with the external tools (auto-round CLI, or the
 * llm-compressor driver where auto-round has no preset), score by serving each checkpoint
 * with vLLM (`VllmEngine` over HTTP) and running our suites through it, plus lm_eval tasks
 * when the model entry lists them. Everything is started as argv arrays; no shell.
 *
 * Tool commands come from `toolArgv` (src/toolenv): a LOWBIT_* variable (JSON argv), else the
 * built tool environment (`bench env`), else the bare name on PATH. Documented in harness/README.md:
 *   LOWBIT_VLLM_COMMAND          replaces `["vllm","serve"]`, e.g. ["node","bin/bench.js","serve"]
 *   LOWBIT_AUTOROUND_COMMAND     replaces `["auto-round"]` (env `quant`)
 *   LOWBIT_QUANT_PYTHON          python of auto-round's environment (version probe)
 *   LOWBIT_LLMCOMPRESSOR_PYTHON  python running harness/llmcompressor_quantize.py (env `llmcompressor`)
 *   LOWBIT_LMEVAL_COMMAND        replaces `["lm_eval"]` (one element; env `eval`)
 *   LOWBIT_QUANT_DEVICE          auto-round's --device_map (default: cpu where no GPU device exists)
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { loadTokenizer } from '../checkpoint/tokenizer.ts';
import { runLmEval } from '../engines/lmeval/index.ts';
import { VllmEngine, maxPositions, suiteWindowEngine, vllmServeCommand, type ServerCommand } from '../engines/vllm/index.ts';
import { UserError } from '../errors.ts';
import { runSuite, suiteItemCount, suiteTexts } from '../eval/index.ts';
import { buildKldWindows, computeKldBase, loadKldBase, saveKldBase } from '../eval/kld.ts';
import type { EngineName, ResolvedModel } from '../matrix/models.ts';
import type { EvalJob, Job, Plan, QuantizeJob } from '../matrix/plan.ts';
import { loadSuite, type KldSuite } from '../matrix/suites.ts';
import { toolArgv } from '../toolenv/index.ts';
import {
  hfCalibrationSpec,
  runAutoRound,
  runLlmCompressor,
  writeCalibrationJsonl,
  type ExternalQuantResult,
} from '../quant/external/index.ts';
import type { MetricValue } from '../results/record.ts';
import { KLD_BASE_FILE } from './embedded.ts';
import type { Handlers, JobContext, QuantizeContext, QuantizeResult } from './run.ts';

export interface VllmHandlerOptions {
  /** Per-job logs of servers and tools (kept when a job fails). */
  logDir: string;
  /** Project root (for harness/llmcompressor_quantize.py). */
  root: string;
  /** The suite whose eval jobs also run the model's lm_eval tasks (once per checkpoint). */
  lmevalSuite?: string | null;
  /** Where LOWBIT_* are read (default process.env). */
  env?: Record<string, string | undefined>;
  quantizeTimeoutMs?: number;
  lmevalTimeoutMs?: number;
  onBatch?: (text: string) => void;
}

/** vLLM-only flags are added only when the server really is vLLM (bench serve does not take them). */
function isVllm(prefix: readonly string[]): boolean {
  return prefix.some((a) => basename(a) === 'vllm' || /^vllm(\.|$)/.test(a));
}

/**
 * The server command for one job. `--max-model-len` is set per suite (window L + 2, lm-eval's
 * vllm convention) and comes last, so it wins over a value in models.json's serveArgs.
 */
export function serverCommandFor(model: ResolvedModel, env: Record<string, string | undefined>, o: { maxModelLen: number; maxLogprobs: number }): ServerCommand {
  const prefix = toolArgv('LOWBIT_VLLM_COMMAND', ['vllm', 'serve'], env);
  const v = model.overrides.vllm;
  const vllmOnly = isVllm(prefix)
    ? ['--generation-config', 'vllm', '--no-enable-prefix-caching', '--seed', '0', '--tensor-parallel-size', String(v?.tensorParallel ?? 1)]
    : [];
  return vllmServeCommand({
    command: prefix[0],
    args: [...prefix.slice(1), '{model}', '--served-model-name', '{name}', '--host', '{host}', '--port', '{port}'],
    extraArgs: [...vllmOnly, ...(v?.serveArgs ?? []), '--max-model-len', String(o.maxModelLen), '--max-logprobs', String(o.maxLogprobs)],
    env: { ...(v?.env ?? {}) },
  });
}

/** The local snapshot of an hf source at its pinned revision (HF cache layout), so every tool sees the same weights. */
export function hfSnapshotDir(model: ResolvedModel, env: Record<string, string | undefined>): string {
  const repo = model.hfRepo!;
  const rev = model.revision!;
  const caches = [env.HF_HUB_CACHE, env.HF_HOME && join(env.HF_HOME, 'hub'), join(homedir(), '.cache', 'huggingface', 'hub')].filter((x): x is string => !!x);
  for (const c of caches) {
    const d = join(c, `models--${repo.replace('/', '--')}`, 'snapshots', rev);
    if (existsSync(join(d, 'config.json'))) return d;
  }
  throw new UserError(`model '${model.alias}' (${repo} at ${rev}) is not in the Hugging Face cache (${caches[0]}); download that revision first: hf download ${repo} --revision ${rev}`);
}

function modelDirOf(ctx: JobContext, env: Record<string, string | undefined>): string {
  return ctx.modelDir ?? hfSnapshotDir(ctx.model, env);
}

/** Move the export's files into the job's output dir (the cache renames that dir into place); the tool's own caches stay behind. */
function adopt(exportDir: string, outDir: string, staging: string): void {
  for (const name of readdirSync(exportDir)) {
    if (name.startsWith('.') || join(exportDir, name) === staging) continue;
    renameSync(join(exportDir, name), join(outDir, name));
  }
  rmSync(staging, { recursive: true, force: true });
}

/** auto-round's --device_map: LOWBIT_QUANT_DEVICE, else cpu where the machine has no GPU device node. */
export function quantDevice(env: Record<string, string | undefined>): string | undefined {
  if (env.LOWBIT_QUANT_DEVICE) return env.LOWBIT_QUANT_DEVICE;
  const gpu = existsSync('/dev/nvidiactl') || existsSync('/dev/kfd');
  return gpu && env.CUDA_VISIBLE_DEVICES !== '' ? undefined : 'cpu';
}

/**
 * RTN needs calibration only where auto-round's regular flow caches block inputs (NVFP4) or
 * activations are calibrated (NVFP4 W4A4 global scale, static FP8); weight-only RTN weights
 * do not depend on it. This small set keeps those jobs cheap.
 */
const RTN_CALIBRATION = { nsamples: 8, seqlen: 128 };

/** The python next to a venv's auto-round (or that python itself), for the version probe. */
function siblingPython(exe: string): string | null {
  if (!/^(auto-round(-\w+)?|python[\d.]*)$/.test(basename(exe))) return null;
  const p = join(dirname(exe), 'python');
  return exe.includes('/') && existsSync(p) ? p : null;
}

/**
 * One quantize job through the real tools: calibration written where the tool reads it,
 * auto-round (or the llm-compressor driver for dynamic FP8, which auto-round has no preset
 * for) run by the one runner in src/quant/external, the validated export moved into the
 * cache folder, tool + versions + argv + log + any config correction in the provenance.
 */
export async function quantizeExternal(
  job: QuantizeJob,
  ctx: QuantizeContext,
  o: { env: Record<string, string | undefined>; root: string; logPath: string; timeoutMs?: number; onProgress?: (line: string) => void },
): Promise<QuantizeResult> {
  const env = o.env;
  const model = modelDirOf(ctx, env);
  const staging = join(ctx.outDir, '.tool-output');
  mkdirSync(staging, { recursive: true });
  const qenv = { ...(ctx.model.overrides.vllm?.env ?? {}) };
  const rv = job.recipeValues;
  const tuned = job.method === 'autoround' && rv !== null;
  const cap = Math.min(ctx.model.overrides.seqlenCap ?? Infinity, maxPositions(model) ?? Infinity);
  const nsamples = tuned ? rv.nsamples : RTN_CALIBRATION.nsamples;
  const seqlen = Math.min(tuned ? rv.seqlen : RTN_CALIBRATION.seqlen, cap);
  const cal = ctx.model.calibration;
  let dataset: string | undefined;
  let calibration: Record<string, unknown> | null = null;
  if (cal && 'hf' in cal) {
    dataset = hfCalibrationSpec(cal);
    calibration = { hf: cal.hf, revision: cal.revision, split: cal.split };
  } else {
    // The bundled stories (models.json path, else the default file), as jsonl lines of >= seqlen tokens.
    // A dot name: the export is adopted without it (model-free auto-round writes into staging itself).
    const file = join(staging, '.calibration.jsonl');
    // auto-round splits --dataset on ',' and ':' (several sets, options).
    if (/[,:]/.test(file)) throw new UserError(`the calibration file path ${file} contains ',' or ':', which auto-round's --dataset cannot carry; use a --bench-dir without them`);
    const written = await writeCalibrationJsonl(model, file, { seqlen, nsamples, textFile: ctx.model.calibrationPath ?? undefined });
    dataset = written.path;
    calibration = { path: ctx.model.calibrationPath ?? 'default', jsonlLines: written.lines };
  }
  const common = { logPath: o.logPath, timeoutMs: o.timeoutMs, signal: ctx.signal, env: qenv, onProgress: (_p: unknown, line: string) => o.onProgress?.(line) };
  const values = { nsamples, seqlen, seed: job.seed, dataset, ...(tuned ? { iters: rv.iters, batchSize: rv.batchSize } : {}) };
  let r: ExternalQuantResult;
  // auto-round has no preset for dynamic per-token FP8 activations; llm-compressor does.
  if (job.scheme.weights.kind === 'fp8' && job.scheme.activations.kind === 'fp8' && job.scheme.activations.dynamic) {
    const python = toolArgv('LOWBIT_LLMCOMPRESSOR_PYTHON', ['python3'], env);
    r = await runLlmCompressor(
      { model, scheme: job.scheme, method: job.method, outputDir: staging, python, driver: join(o.root, 'harness', 'llmcompressor_quantize.py'), device: quantDevice(env), ...values },
      common,
    );
  } else {
    const command = toolArgv('LOWBIT_AUTOROUND_COMMAND', ['auto-round'], env);
    const python = (env.LOWBIT_AUTOROUND_COMMAND ? siblingPython(command[0]) : null) ?? toolArgv('LOWBIT_QUANT_PYTHON', ['python3'], env)[0];
    r = await runAutoRound(
      {
        model, scheme: job.scheme, method: job.method, outputDir: staging, command, device: quantDevice(env), ...values,
        ...(tuned ? { lr: rv.lr, minmaxLr: rv.minmaxLr, enableQuantedInput: rv.enableQuantedInput, enableMinmaxTuning: rv.enableMinmaxTuning } : {}),
      },
      { ...common, python },
    );
  }
  adopt(r.checkpoint, ctx.outDir, staging);
  return {
    bitsPerWeight: job.bitsPerWeight,
    layers: r.quantizedLayers,
    provenance: {
      tool: r.tool, toolVersion: r.toolVersion, versions: r.versions, argv: r.argv, format: r.format, compressedTensors: r.compressedTensorsVersion,
      calibration, configCorrection: r.configCorrection, tuningSeconds: r.tuningSeconds, blockLosses: r.blockLosses,
      source: sourceOf(ctx), log: o.logPath, seconds: r.seconds,
    },
  };
}

export function vllmHandlers(opts: VllmHandlerOptions): Handlers {
  const env = opts.env ?? process.env;
  const logFor = (jobId: string, file: string) => join(opts.logDir, jobId.slice(0, 16), file);
  const progress = (label: string) => (p: { task: string; batch: number; batches: number }) => opts.onBatch?.(`${label}: ${p.task} batch ${p.batch}/${p.batches}`);

  /** Serve `dir` for one suite of window L; the caller closes it. */
  const serve = async (ctx: JobContext, dir: string, jobId: string, L: number, topK: number, what: string): Promise<VllmEngine> => {
    const pos = maxPositions(dir);
    // L + 2: a window of L predictions is sent as L + 1 prompt tokens plus the one generated token.
    const maxModelLen = pos !== null && env.VLLM_ALLOW_LONG_MAX_MODEL_LEN !== '1' ? Math.min(L + 2, pos) : L + 2;
    const command = serverCommandFor(ctx.model, env, { maxModelLen, maxLogprobs: Math.max(20, topK) });
    return VllmEngine.start({ model: dir, servedName: `lowbit-${jobId.slice(0, 12)}`, command, logPath: logFor(jobId, `${what}.log`), signal: ctx.signal });
  };

  return {
    quantize: (job, ctx) =>
      quantizeExternal(job, ctx, { env, root: opts.root, logPath: logFor(job.id, 'quantize.log'), timeoutMs: opts.quantizeTimeoutMs, onProgress: (line) => opts.onBatch?.(`${job.label}: ${line.slice(0, 100)}`) }),

    async base(job, ctx) {
      const suite = loadSuite(job.suite.file) as KldSuite;
      if (suite.task !== 'kld') throw new Error(`${job.label}: base distributions exist only for kld suites`);
      const dir = modelDirOf(ctx, env);
      const tok = await loadTokenizer(dir);
      const L = suite.params.maxLength;
      const engine = await serve(ctx, dir, job.id, L, suite.params.topK, 'serve-base');
      try {
        const windows = buildKldWindows(suiteTexts(suite, ctx.limit), tok, L);
        const base = await computeKldBase(suiteWindowEngine(engine, L, suite.name), windows, {
          windowLength: L, topK: suite.params.topK, score: suite.params.score, batchSize: suite.params.batchSize, task: suite.name, onProgress: progress(job.label),
        });
        saveKldBase(join(ctx.outDir, KLD_BASE_FILE), base, { suite: suite.name });
        return { provenance: { ...engine.provenance(), serverPid: engine.server?.pid ?? null, source: sourceOf(ctx) } };
      } finally {
        await engine.close();
      }
    },

    async evaluate(job, ctx) {
      const suite = loadSuite(job.suite.file);
      const dir = ctx.checkpointDir ?? modelDirOf(ctx, env);
      const tok = await loadTokenizer(dir);
      const L = suite.params.maxLength;
      const topK = suite.task === 'kld' ? suite.params.topK : 0;
      const baseCache = ctx.baseDir ? loadKldBase(join(ctx.baseDir, KLD_BASE_FILE)) : undefined;
      const engine = await serve(ctx, dir, job.id, L, topK, 'serve');
      let metrics: MetricValue[];
      let served: Record<string, unknown>;
      try {
        metrics = await runSuite(suite, suiteWindowEngine(engine, L, suite.name), tok, { limit: ctx.limit, baseCache, onProgress: progress(job.label) });
        served = { ...engine.provenance(), serverPid: engine.server?.pid ?? null };
      } finally {
        await engine.close();
      }
      const provenance: Record<string, unknown> = {
        engine: 'vllm', ...served, limit: ctx.limit ?? null, source: ctx.checkpointDir ? null : sourceOf(ctx),
        bos: { addBosDefault: tok.addBosDefault, bosId: tok.bosId, prefixToken: engine.info.prefixToken },
      };
      const tasks = ctx.model.overrides.vllm?.lmevalTasks ?? [];
      if (tasks.length && job.suite.name === opts.lmevalSuite) {
        // After our server is down: lm_eval's vllm backend loads the model itself (GPU memory).
        const ours = new Set(metrics.map((m) => m.task));
        const lmCmd = toolArgv('LOWBIT_LMEVAL_COMMAND', ['lm_eval'], env);
        if (lmCmd.length !== 1) throw new UserError('LOWBIT_LMEVAL_COMMAND must name one executable, e.g. ["/opt/venv/bin/lm_eval"]');
        const v = ctx.model.overrides.vllm;
        const r = await runLmEval(
          {
            backend: 'vllm', pretrained: dir, tasks, outputPath: join(opts.logDir, job.id.slice(0, 16), 'lm-eval'), addBosToken: tok.addBosDefault,
            tensorParallelSize: v?.tensorParallel ?? 1, limit: ctx.limit, command: lmCmd[0],
          },
          { logPath: logFor(job.id, 'lm-eval.log'), timeoutMs: opts.lmevalTimeoutMs, signal: ctx.signal, env: { ...(v?.env ?? {}) } },
        );
        const clash = r.metrics.find((m) => ours.has(m.task));
        if (clash) throw new UserError(`lm_eval task '${clash.task}' has the name of one of our suites; rename the suite or drop the task from lmevalTasks`);
        metrics = [...metrics, ...r.metrics];
        provenance.lmeval = { ...r.provenance, resultsPath: r.resultsPath, seconds: r.seconds };
      }
      return { metrics, items: suiteItemCount(suite, ctx.limit), provenance };
    },
  };
}

function sourceOf(ctx: JobContext): Record<string, unknown> {
  return ctx.model.hfRepo ? { hf: ctx.model.hfRepo, revision: ctx.model.revision } : { local: ctx.model.source };
}

/** Handlers that dispatch each job to its model's engine (a plan may mix onnx and vllm models). */
export function handlersByEngine(plan: Plan, byEngine: Record<EngineName, Handlers>): Handlers {
  const engineOf = new Map(plan.models.map((m) => [m.alias, m.engine]));
  const pick = (j: Job): Handlers => byEngine[j.kind === 'quantize' ? engineOf.get(j.model)! : (j as EvalJob).engine ?? engineOf.get(j.model)!];
  return {
    quantize: (j, ctx) => pick(j).quantize(j, ctx),
    base: (j, ctx) => pick(j).base(j, ctx),
    evaluate: (j, ctx) => pick(j).evaluate(j, ctx),
  };
}

/** Make sure a log directory exists (the CLI prints where logs go). */
export function ensureLogDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}
