/**
 * `lm_eval` command lines (reference lm-eval.md §5, §6). Built as argv arrays; nothing goes
 * through a shell. `add_bos_token` is always explicit: its default changed in v0.4.9.2
 * (None = "tokenizer default") and differs between backends, so leaving it out makes the
 * same checkpoint score differently across lm-eval versions (lm-eval.md §1.2).
 */
import { UserError } from '../../errors.ts';

export interface LmEvalVllmOptions {
  backend: 'vllm';
  /** Checkpoint dir or repo id (`pretrained=`). */
  pretrained: string;
  tasks: readonly string[];
  outputPath: string;
  addBosToken: boolean;
  tensorParallelSize?: number;
  dtype?: string;
  gpuMemoryUtilization?: number;
  maxModelLen?: number;
  /** vLLM's seed model arg (lm-eval default 1234). */
  modelSeed?: number;
  /** Further `vllm.LLM(...)` kwargs, e.g. `{ enforce_eager: 'True' }`. */
  extraModelArgs?: Record<string, string | number | boolean>;
  batchSize?: number | 'auto';
  numFewshot?: number;
  limit?: number;
  logSamples?: boolean;
  /** `--seed` (lm-eval default `0,1234,1234,1234`). */
  seed?: number | string;
  /** Executable, default `lm_eval`; e.g. `/opt/venv/bin/lm_eval`. */
  command?: string;
  /** Folder of extra task YAMLs (`--include_path`), e.g. tasks generated from our suites. */
  includePath?: string;
}

/** `lm_eval --model hf`: transformers in-process (CPU here). */
export interface LmEvalHfOptions extends Omit<LmEvalVllmOptions, 'backend' | 'tensorParallelSize' | 'gpuMemoryUtilization' | 'maxModelLen'> {
  backend: 'hf';
  /** Rolling window / longest input (`max_length`); lm-eval's default is the model's positions. */
  maxLength: number;
  /** `cpu` here; `cuda:0` on a GPU host. */
  device?: string;
}

export interface LmEvalLocalCompletionsOptions extends Omit<LmEvalVllmOptions, 'backend' | 'pretrained' | 'tensorParallelSize' | 'gpuMemoryUtilization' | 'maxModelLen' | 'dtype'> {
  backend: 'local-completions';
  /** Served model name. */
  model: string;
  /** Full completions URL, e.g. http://127.0.0.1:41873/v1/completions. */
  baseUrl: string;
  /** HF tokenizer name or path (local tokenization, token-id requests). */
  tokenizer: string;
  /** Set it to the server's max_model_len: lm-eval's default is 2048. */
  maxLength: number;
  numConcurrent?: number;
  maxRetries?: number;
}

export type LmEvalOptions = LmEvalVllmOptions | LmEvalHfOptions | LmEvalLocalCompletionsOptions;

function modelArgValue(key: string, v: string | number | boolean): string {
  const s = typeof v === 'boolean' ? (v ? 'True' : 'False') : String(v);
  // lm-eval splits --model_args on ',' and each pair on '='; a comma cannot be carried.
  if (s.includes(',')) throw new UserError(`lm_eval model arg ${key}='${s}' contains a comma, which lm-eval's --model_args cannot carry; rename or symlink the path`);
  if (s === '') throw new UserError(`lm_eval model arg ${key} is empty`);
  return s;
}

export function modelArgsString(pairs: readonly [string, string | number | boolean | undefined][]): string {
  return pairs
    .filter((p): p is [string, string | number | boolean] => p[1] !== undefined)
    .map(([k, v]) => `${k}=${modelArgValue(k, v)}`)
    .join(',');
}

export function buildLmEvalArgv(o: LmEvalOptions): { command: string; args: string[] } {
  if (o.tasks.length === 0) throw new UserError('lm_eval needs at least one task');
  for (const t of o.tasks) if (!/^[A-Za-z0-9_.\-]+$/.test(t)) throw new UserError(`lm_eval task name '${t}' is not a plain task name (letters, digits, _ . -)`);
  let modelArgs: string;
  if (o.backend === 'vllm') {
    modelArgs = modelArgsString([
      ['pretrained', o.pretrained],
      ['tensor_parallel_size', o.tensorParallelSize ?? 1],
      ['dtype', o.dtype ?? 'auto'],
      ['gpu_memory_utilization', o.gpuMemoryUtilization],
      ['max_model_len', o.maxModelLen],
      ['add_bos_token', o.addBosToken],
      ['seed', o.modelSeed],
      ...Object.entries(o.extraModelArgs ?? {}),
    ]);
  } else if (o.backend === 'hf') {
    modelArgs = modelArgsString([
      ['pretrained', o.pretrained],
      ['dtype', o.dtype ?? 'float32'],
      ['max_length', o.maxLength],
      ['add_bos_token', o.addBosToken],
      ...Object.entries(o.extraModelArgs ?? {}),
    ]);
  } else {
    modelArgs = modelArgsString([
      ['model', o.model],
      ['base_url', o.baseUrl],
      ['tokenizer', o.tokenizer],
      ['tokenizer_backend', 'huggingface'],
      ['tokenized_requests', true],
      ['max_length', o.maxLength],
      ['num_concurrent', o.numConcurrent],
      ['max_retries', o.maxRetries],
      ['add_bos_token', o.addBosToken],
      ['seed', o.modelSeed],
      ...Object.entries(o.extraModelArgs ?? {}),
    ]);
  }
  const args = ['--model', o.backend, '--model_args', modelArgs, '--tasks', o.tasks.join(','), '--output_path', o.outputPath];
  if (o.includePath !== undefined) args.push('--include_path', o.includePath);
  const batch = o.batchSize ?? (o.backend === 'vllm' ? 'auto' : 1);
  args.push('--batch_size', String(batch));
  if (o.backend === 'hf') args.push('--device', o.device ?? 'cpu');
  if (o.numFewshot !== undefined) args.push('--num_fewshot', String(o.numFewshot));
  if (o.limit !== undefined) args.push('--limit', String(o.limit));
  if (o.logSamples) args.push('--log_samples');
  args.push('--seed', String(o.seed ?? 0));
  return { command: o.command ?? 'lm_eval', args };
}

/** lm-eval's `model_name_sanitized`: runs of `" < > : / | \ ? * [ ]` become `__` (§5.1). */
export function sanitizeModelName(name: string): string {
  return name.replace(/["<>:/|\\?*[\]]+/g, '__');
}

/** The model arg lm-eval names its output folder after: first of peft, delta, pretrained, model, path, engine. */
export function outputModelName(o: LmEvalOptions): string {
  return o.backend === 'local-completions' ? o.model : o.pretrained;
}
