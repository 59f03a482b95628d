/**
 * One of our suites scored by real lm-eval: generate the task (tasks.ts), run `lm_eval` with
 * `add_bos_token` set from the suite's BOS rule, and map its results back onto the suite's
 * task and metric names, so they sit in a ledger or a table beside the embedded engine's.
 *
 * Backends: `hf` (transformers in-process, float32 by default) and `local-completions`
 * (lm-eval's OpenAI-completions client, here against `bench serve` or any vLLM-compatible
 * server).
 */
import { join } from 'node:path';
import type { TextTokenizer } from '../../checkpoint/tokenizer.ts';
import { UserError } from '../../errors.ts';
import type { Suite } from '../../matrix/suites.ts';
import type { MetricValue } from '../../results/record.ts';
import type { LmEvalOptions } from './argv.ts';
import { runLmEval } from './run.ts';
import { lmEvalAddBos, writeLmEvalTask } from './tasks.ts';

export type LmEvalBackendOptions =
  | {
      backend: 'hf';
      /** Checkpoint directory. */
      pretrained: string;
      /** torch dtype (`float32`; `bfloat16` for NVFP4/MXFP4 checkpoints, see lmEvalHfDtype). */
      dtype?: string;
    }
  | {
      backend: 'local-completions';
      /** Full completions URL, e.g. http://127.0.0.1:PORT/v1/completions. */
      baseUrl: string;
      /** Served model name. */
      model: string;
      /** Checkpoint directory: lm-eval tokenizes locally and sends token ids. */
      tokenizer: string;
    };

export interface LmEvalSuiteOptions {
  /** Folder for the generated task, lm-eval's output and its log. */
  workDir: string;
  /** `lm_eval` executable. */
  command: string;
  /** Score the first N documents only (the task file holds just those). */
  limit?: number;
  /** Perplexity suites: override the suite's BOS rule. */
  bos?: 'prefix' | 'document';
  batchSize?: number;
  /** local-completions: the server's max_model_len (lm-eval's rolling window is that - 2); default window + 2. */
  maxLength?: number;
  timeoutMs?: number;
  env?: Record<string, string>;
}

export interface LmEvalSuiteResult {
  metrics: MetricValue[];
  provenance: Record<string, unknown>;
  resultsPath: string;
  seconds: number;
}

/**
 * Dtype lm-eval's hf backend must load a checkpoint in. transformers dequantizes FP4
 * (NVFP4/MXFP4) compressed-tensors weights to bfloat16 and fails on a float32 model with a
 * dtype mismatch, so those load in bfloat16; everything else in float32, as our engine computes.
 */
export function lmEvalHfDtype(config: { quantization_config?: { config_groups?: Record<string, { weights?: { type?: string; num_bits?: number } }> } }): 'float32' | 'bfloat16' {
  const groups = Object.values(config.quantization_config?.config_groups ?? {});
  return groups.some((g) => g.weights?.type === 'float' && g.weights?.num_bits === 4) ? 'bfloat16' : 'float32';
}

export async function runSuiteWithLmEval(suite: Suite, tok: Pick<TextTokenizer, 'addBosDefault'>, backend: LmEvalBackendOptions, o: LmEvalSuiteOptions): Promise<LmEvalSuiteResult> {
  const files = writeLmEvalTask(suite, join(o.workDir, 'tasks'), { limit: o.limit });
  const addBosToken = lmEvalAddBos(suite, tok, o.bos);
  const common = {
    tasks: [files.task],
    outputPath: join(o.workDir, 'out'),
    includePath: files.includePath,
    addBosToken,
    command: o.command,
    batchSize: o.batchSize,
  };
  const maxLength = suite.params.maxLength;
  const opts: LmEvalOptions =
    backend.backend === 'hf'
      ? { ...common, backend: 'hf', pretrained: backend.pretrained, dtype: backend.dtype ?? 'float32', maxLength, batchSize: o.batchSize ?? 64 }
      : { ...common, backend: 'local-completions', model: backend.model, baseUrl: backend.baseUrl, tokenizer: backend.tokenizer, maxLength: o.maxLength ?? maxLength + 2, batchSize: o.batchSize ?? 16, maxRetries: 1 };
  const run = await runLmEval(opts, {
    logPath: join(o.workDir, 'lm-eval.log'),
    timeoutMs: o.timeoutMs,
    // Everything is local: no Hub look-ups for the json builder or a local tokenizer.
    env: { HF_HUB_OFFLINE: '1', HF_DATASETS_OFFLINE: '1', TOKENIZERS_PARALLELISM: 'false', ...o.env },
  });
  const mine = run.metrics.filter((m) => m.task === files.task && files.metrics.includes(m.metric));
  if (mine.length !== files.metrics.length)
    throw new UserError(`lm_eval reported ${mine.map((m) => m.metric).join(', ') || 'nothing'} for ${files.task}, expected ${files.metrics.join(', ')}; see ${run.resultsPath}`);
  const bosInDocument = suite.task === 'perplexity' ? (addBosToken ? 1 : 0) : undefined;
  const metrics = mine.map((m) => ({
    ...m,
    task: suite.name,
    // lm-eval reports n = documents; our multiple choice counts documents too.
    n: files.docs,
    extra: { ...m.extra, docs: files.docs, addBos: addBosToken ? 1 : 0, ...(bosInDocument !== undefined ? { bosInDocument } : {}) },
  }));
  const provenance = {
    ...run.provenance,
    engine: `lmeval-${backend.backend === 'hf' ? 'hf' : 'completions'}`,
    lmevalTask: files.task,
    addBosToken,
    ...(suite.task === 'perplexity' ? { bos: addBosToken ? 'document' : 'prefix' } : {}),
    resultsPath: run.resultsPath,
  };
  return { metrics, provenance, resultsPath: run.resultsPath, seconds: run.seconds };
}
