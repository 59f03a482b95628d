/**
 * Job handlers for the GPU path: quantize with the external tools (auto-round CLI, or the
 * llm-compressor driver where auto-round has no preset), score by serving each checkpoint
 * with vLLM (`VllmEngine` over HTTP) and running our suites through it, plus lm_eval tasks
 * when the model entry lists them. Everything is started as argv arrays; no shell.
 *
 * Environment (documented in harness/README.md):
 *   LOWBIT_VLLM_COMMAND       JSON argv replacing `["vllm","serve"]`, e.g. ["node","bin/bench.js","serve"]
 *   LOWBIT_AUTOROUND_COMMAND  JSON argv replacing `["auto-round"]`
 *   LOWBIT_LMEVAL_COMMAND     JSON argv of one element replacing `["lm_eval"]`
 *   LOWBIT_PYTHON             python of the tools' venv (llm-compressor driver, version probes)
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { loadTokenizer } from '../checkpoint/tokenizer.ts';
import type { Engine, LoglikelihoodRequest, RollingRequest, TopLogprobsRequest } from '../engines/engine.ts';
import { runLmEval } from '../engines/lmeval/index.ts';
import { VllmEngine, vllmServeCommand, type ServerCommand } from '../engines/vllm/index.ts';
import { UserError } from '../errors.ts';
import { runSuite, suiteItemCount, suiteTexts } from '../eval/index.ts';
import { buildKldWindows, computeKldBase, loadKldBase, saveKldBase } from '../eval/kld.ts';
import type { EngineName, ResolvedModel } from '../matrix/models.ts';
import type { EvalJob, Job, Plan, QuantizeJob } from '../matrix/plan.ts';
import { loadSuite, type KldSuite } from '../matrix/suites.ts';
import {
  autoRoundExportDir,
  buildAutoRoundArgv,
  parseProgress,
  pythonPackageVersion,
  runLlmCompressor,
  runLogged,
  validateQuantizedCheckpoint,
  type AutoRoundJob,
} from '../quant/external/index.ts';
import { failure } from '../quant/external/run.ts';
import type { MetricValue } from '../results/record.ts';
import { KLD_BASE_FILE } from './embedded.ts';
import type { Handlers, JobContext, QuantizeResult } from './run.ts';

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

/** A JSON argv array from an env var, or null when unset. */
export function argvFromEnv(env: Record<string, string | undefined>, name: string): string[] | null {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return null;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new UserError(`${name} must be a JSON array of strings (argv, no shell), e.g. ["/opt/venv/bin/vllm","serve"]; got ${raw.slice(0, 60)}`);
  }
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string' && x !== ''))
    throw new UserError(`${name} must be a non-empty JSON array of non-empty strings, e.g. ["node","bin/bench.js","serve"]`);
  return v as string[];
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
  const prefix = argvFromEnv(env, 'LOWBIT_VLLM_COMMAND') ?? ['vllm', 'serve'];
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
  throw new UserError(`model '${model.alias}' (${repo} at ${rev}) is not in the Hugging Face cache (${caches[0]}); download that revision first: huggingface-cli download ${repo} --revision ${rev}`);
}

function modelDirOf(ctx: JobContext, env: Record<string, string | undefined>): string {
  return ctx.modelDir ?? hfSnapshotDir(ctx.model, env);
}

function maxPositions(dir: string): number | null {
  try {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    return typeof c.max_position_embeddings === 'number' ? c.max_position_embeddings : null;
  } catch {
    return null;
  }
}

/**
 * The served engine seen with the suite's window L. VllmEngine windows rolling requests at
 * max_model_len - 2; when that differs from L (the model has too few positions for L + 2), a
 * document longer than the smaller window would be split differently than the embedded
 * engine splits it, so it is refused instead of giving a different number.
 */
export function suiteWindowEngine(engine: VllmEngine, L: number, task: string): Engine {
  const W = engine.rollingWindowLength;
  const promptLimit = engine.maxModelLen - 1;
  return {
    info: { ...engine.info, maxLength: L },
    loglikelihood(reqs: readonly LoglikelihoodRequest[]) {
      for (const q of reqs) {
        const n = q.context.length + q.continuation.length;
        if (n > promptLimit && n <= L + 1)
          throw new UserError(`${task}: a request of ${n} tokens exceeds the server's max_model_len ${engine.maxModelLen} - 1; serve with --max-model-len ${L + 2} (the model needs that many positions)`);
      }
      return engine.loglikelihood(reqs);
    },
    loglikelihoodRolling(reqs: readonly RollingRequest[]) {
      if (W !== L) {
        const long = reqs.find((r) => r.tokens.length > Math.min(W, L));
        if (long)
          throw new UserError(`${task}: a document of ${long.tokens.length} tokens needs rolling windows of ${L}, but the server's max_model_len ${engine.maxModelLen} gives ${W}; the model must allow max_model_len ${L + 2} (for vLLM: VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 with RoPE models) or the suite a shorter window`);
      }
      return engine.loglikelihoodRolling(reqs);
    },
    topLogprobs: (reqs: readonly TopLogprobsRequest[]) => engine.topLogprobs(reqs),
    generateGreedy: (p: readonly number[], n: number) => engine.generateGreedy(p, n),
    close: () => engine.close(),
  };
}

/** Move the export's files into the job's output dir (the cache renames that dir into place). */
function adopt(exportDir: string, outDir: string, staging: string): void {
  for (const name of readdirSync(exportDir)) {
    if (join(exportDir, name) === staging) continue;
    renameSync(join(exportDir, name), join(outDir, name));
  }
  rmSync(staging, { recursive: true, force: true });
}

function autoRoundExtraFlags(job: QuantizeJob): string[] {
  const rv = job.recipeValues;
  if (job.method !== 'autoround' || !rv) return [];
  const out: string[] = [];
  if (rv.lr !== null) out.push('--lr', String(rv.lr));
  if (rv.minmaxLr !== null) out.push('--minmax_lr', String(rv.minmaxLr));
  if (!rv.enableQuantedInput) out.push('--disable_quanted_input');
  if (!rv.enableMinmaxTuning) out.push('--disable_minmax_tuning');
  return out;
}

function calibrationDataset(job: QuantizeJob, model: ResolvedModel): string | undefined {
  if (job.method !== 'autoround') return undefined;
  const c = model.calibration;
  if (!c) return undefined;
  return 'hf' in c ? c.hf : model.calibrationPath ?? undefined;
}

export function vllmHandlers(opts: VllmHandlerOptions): Handlers {
  const env = opts.env ?? process.env;
  const python = env.LOWBIT_PYTHON || 'python3';
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
    async quantize(job, ctx) {
      const model = modelDirOf(ctx, env);
      const staging = join(ctx.outDir, '.tool-output');
      const logPath = logFor(job.id, 'quantize.log');
      const qenv = { ...(ctx.model.overrides.vllm?.env ?? {}) };
      const onLine = (line: string) => {
        const p = parseProgress(line);
        if (p) opts.onBatch?.(`${job.label}: ${line.slice(0, 100)}`);
      };
      // auto-round has no preset for dynamic per-token FP8 (autoround.md §9.2); llm-compressor does.
      const useLlmCompressor = job.scheme.weights.kind === 'fp8' && job.scheme.activations.kind === 'fp8' && job.scheme.activations.dynamic;
      if (useLlmCompressor) {
        const rv = job.recipeValues;
        const r = await runLlmCompressor(
          {
            model, scheme: job.scheme, method: job.method, outputDir: staging, python, driver: join(opts.root, 'harness', 'llmcompressor_quantize.py'),
            ...(job.method === 'autoround' && rv ? { iters: rv.iters, nsamples: rv.nsamples, seqlen: rv.seqlen, batchSize: rv.batchSize, seed: job.seed, dataset: calibrationDataset(job, ctx.model) } : {}),
          },
          { logPath, timeoutMs: opts.quantizeTimeoutMs, signal: ctx.signal, env: qenv, python },
        );
        adopt(staging, ctx.outDir, staging);
        return {
          bitsPerWeight: job.bitsPerWeight, layers: r.quantizedLayers,
          provenance: { tool: r.tool, toolVersion: r.toolVersion, versions: r.versions, argv: r.argv, format: r.format, compressedTensors: r.compressedTensorsVersion, source: sourceOf(ctx), log: logPath },
        } satisfies QuantizeResult;
      }
      const rv = job.recipeValues;
      const arJob: AutoRoundJob = {
        model, scheme: job.scheme, method: job.method, outputDir: staging,
        ...(job.method === 'autoround' && rv ? { iters: rv.iters, nsamples: rv.nsamples, seqlen: rv.seqlen, batchSize: rv.batchSize, seed: job.seed, dataset: calibrationDataset(job, ctx.model) } : {}),
      };
      const built = buildAutoRoundArgv(arJob);
      const prefix = argvFromEnv(env, 'LOWBIT_AUTOROUND_COMMAND') ?? [built.command];
      const ro = { command: prefix[0], args: [...prefix.slice(1), ...built.args, ...autoRoundExtraFlags(job)], env: qenv, logPath, timeoutMs: opts.quantizeTimeoutMs, signal: ctx.signal, onLine };
      const r = await runLogged(ro);
      if (r.exitCode !== 0) throw failure('auto-round', ro, r, 'fix the cause above (scheme/format support, GPU memory, model path)');
      const predicted = autoRoundExportDir(arJob);
      const exportDir = existsSync(join(predicted, 'config.json')) ? predicted : staging;
      if (!existsSync(join(exportDir, 'config.json'))) throw new UserError(`auto-round finished but wrote no checkpoint (expected ${predicted}/config.json); log: ${logPath}`);
      const v = validateQuantizedCheckpoint(exportDir, 'auto-round', job.scheme);
      adopt(exportDir, ctx.outDir, staging);
      const arVersion = await pythonPackageVersion(python, 'auto-round');
      return {
        bitsPerWeight: job.bitsPerWeight,
        layers: v.quantized,
        provenance: {
          tool: 'auto-round', toolVersion: arVersion, versions: { 'auto-round': arVersion, 'compressed-tensors': v.compressedTensorsVersion },
          argv: [ro.command, ...ro.args], format: v.format, source: sourceOf(ctx), log: logPath, seconds: r.seconds,
        },
      } satisfies QuantizeResult;
    },

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
        const lmCmd = argvFromEnv(env, 'LOWBIT_LMEVAL_COMMAND');
        if (lmCmd && lmCmd.length !== 1) throw new UserError('LOWBIT_LMEVAL_COMMAND must name one executable, e.g. ["/opt/venv/bin/lm_eval"]');
        const v = ctx.model.overrides.vllm;
        const r = await runLmEval(
          {
            backend: 'vllm', pretrained: dir, tasks, outputPath: join(opts.logDir, job.id.slice(0, 16), 'lm-eval'), addBosToken: tok.addBosDefault,
            tensorParallelSize: v?.tensorParallel ?? 1, limit: ctx.limit, command: lmCmd?.[0],
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
