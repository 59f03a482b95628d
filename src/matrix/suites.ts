/**
 * Evaluation suites as data: `suites/<name>.json` names the task type, the data file
 * (relative to the suite file), which stories are scored, the metrics and the task's
 * parameters. Loading validates everything up front and turns any problem into a
 * one-line UserError naming the file, the field and the fix.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { didYouMean, UserError } from '../errors.ts';

/** The committed `suites/` folder of this checkout. */
export const SUITES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../suites');

/** Metrics each task type can compute; a suite lists a subset. */
export const TASK_METRICS = {
  perplexity: ['token_perplexity', 'word_perplexity', 'byte_perplexity', 'bits_per_byte'],
  multiple_choice: ['acc', 'acc_norm'],
  lastword: ['acc', 'perplexity'],
  kld: ['kld', 'same_top_p', 'delta_p', 'rms_delta_p', 'ln_ppl_ratio', 'ppl_ratio', 'ppl', 'ppl_base'],
} as const;

export type TaskType = keyof typeof TASK_METRICS;

/**
 * Stories 1-500 of the bundled TinyStories file are reserved for calibration (AutoRound
 * tunes on them) and must never be scored: a suite over tinystories data must start at 501.
 */
export const CALIBRATION_LAST_STORY = 500;

const common = {
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'lower-case letters, digits, . _ -'),
  description: z.string().optional(),
  data: z.string().min(1),
  /** 1-based inclusive story numbers to score (story files: by position; JSONL: by each item's `story`). */
  split: z.object({ from: z.number().int().min(1), to: z.number().int().min(1) }).strict(),
  bootstrap: z.object({ iters: z.number().int().min(0), seed: z.number().int().min(0) }).strict().optional(),
};

const BosPolicy = z.enum(['prefix', 'document']);

/** Parameters of the tasks that score a continuation after a context (multiple choice, last word). */
const ContextParams = z
  .object({
    maxLength: z.number().int().min(1),
    /** lm-eval's target_delimiter between context and continuation (" " by default; "" when the context keeps its own whitespace). */
    targetDelimiter: z.string().default(' '),
    addBos: z.boolean().optional(),
    batchSize: z.number().int().min(1).default(32),
  })
  .strict();

const SuiteSchema = z.discriminatedUnion('task', [
  z
    .object({
      ...common,
      task: z.literal('perplexity'),
      format: z.literal('stories'),
      metrics: z.array(z.enum(TASK_METRICS.perplexity)).min(1),
      params: z
        .object({
          /** Rolling window L (the model's window); must not exceed the engine's maxLength. */
          maxLength: z.number().int().min(1),
          /** 'prefix': document tokens without BOS, conditioned on the prefix token (lm-eval <= 0.4.9.1, and
           *  the API backends); 'document': the document tokens start with BOS too (lm-eval >= 0.4.9.2 with a BOS tokenizer). */
          bos: BosPolicy.default('prefix'),
          batchSize: z.number().int().min(1).default(8),
        })
        .strict(),
    })
    .strict(),
  z
    .object({
      ...common,
      task: z.literal('multiple_choice'),
      format: z.literal('jsonl'),
      metrics: z.array(z.enum(TASK_METRICS.multiple_choice)).min(1),
      params: ContextParams,
    })
    .strict(),
  z
    .object({
      ...common,
      task: z.literal('lastword'),
      format: z.literal('jsonl'),
      metrics: z.array(z.enum(TASK_METRICS.lastword)).min(1),
      params: ContextParams,
    })
    .strict(),
  z
    .object({
      ...common,
      task: z.literal('kld'),
      format: z.literal('stories'),
      metrics: z.array(z.enum(TASK_METRICS.kld)).min(1),
      params: z
        .object({
          /** Tokens per window (llama.cpp's n_ctx). */
          maxLength: z.number().int().min(4),
          /** Top-k log-probs kept per position; 0 = the whole vocabulary (exact KL). */
          topK: z.number().int().min(0),
          /** 'second-half': score positions n_ctx/2 .. n_ctx-2 as llama.cpp; 'all': every position. */
          score: z.enum(['second-half', 'all']).default('second-half'),
          batchSize: z.number().int().min(1).default(4),
        })
        .strict(),
    })
    .strict(),
]);

export type Suite = z.infer<typeof SuiteSchema> & {
  /** Absolute path of the suite file. */
  file: string;
  /** Absolute path of the data file. */
  dataPath: string;
};
export type PerplexitySuite = Extract<Suite, { task: 'perplexity' }>;
export type MultipleChoiceSuite = Extract<Suite, { task: 'multiple_choice' }>;
export type LastWordSuite = Extract<Suite, { task: 'lastword' }>;
export type KldSuite = Extract<Suite, { task: 'kld' }>;

/** Names of the suites in a folder (file names without `.json`), sorted. */
export function listSuites(dir = SUITES_DIR): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();
}

/** Load a suite by name (from `dir`) or by path (anything ending in .json or containing a slash). */
export function loadSuite(nameOrPath: string, dir = SUITES_DIR): Suite {
  const isPath = nameOrPath.endsWith('.json') || nameOrPath.includes('/');
  const file = isPath ? resolve(nameOrPath) : join(dir, `${nameOrPath}.json`);
  if (!existsSync(file)) {
    if (isPath) throw new UserError(`${nameOrPath}: no such suite file; pass a suite name or an existing .json path`);
    throw new UserError(`unknown suite '${nameOrPath}'; ${didYouMean(nameOrPath, listSuites(dir))}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message.split('\n')[0]}); fix the suite file`);
  }
  return parseSuite(raw, file);
}

/** Validate a parsed suite object; `file` names it in errors and anchors its data path. */
export function parseSuite(raw: unknown, file: string): Suite {
  const r = SuiteSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue.path.length ? issue.path.join('.') : '(top level)';
    throw new UserError(`${file}: invalid suite at ${where}: ${issue.message}; fix the suite file`);
  }
  const s = r.data;
  const stem = basename(file).replace(/\.json$/, '');
  if (s.name !== stem) throw new UserError(`${file}: suite name '${s.name}' differs from its file name '${stem}'; make them equal`);
  if (s.split.to < s.split.from) throw new UserError(`${file}: split.from ${s.split.from} is after split.to ${s.split.to}; fix the range`);
  if (/tinystories/i.test(s.data) && s.split.from <= CALIBRATION_LAST_STORY)
    throw new UserError(
      `${file}: split starts at story ${s.split.from}, but stories 1-${CALIBRATION_LAST_STORY} are reserved for calibration; start the split at ${CALIBRATION_LAST_STORY + 1} or later`,
    );
  if (new Set(s.metrics).size !== s.metrics.length) throw new UserError(`${file}: metrics list a metric twice; list each once`);
  const dataPath = isAbsolute(s.data) ? s.data : resolve(dirname(file), s.data);
  return { ...s, file, dataPath } as Suite;
}
