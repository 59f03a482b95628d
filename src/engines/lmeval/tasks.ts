/**
 * lm-eval task definitions generated from our suites: for each suite a task YAML plus a local
 * JSON-lines file, loaded with `lm_eval --include_path DIR` (`dataset_path: json`,
 * `data_files`). The documents are the ones our engine scores (same selection, same text), so
 * lm-eval and bench differ only in how they compute, never in what they read.
 *
 *   perplexity      -> output_type loglikelihood_rolling, doc_to_target = the story
 *   multiple_choice -> output_type multiple_choice (context, choices, gold index)
 *   lastword        -> output_type loglikelihood (context, target word): acc = greedy, perplexity
 *
 * BOS is not a task setting in lm-eval but a model argument (`add_bos_token`); `lmEvalAddBos`
 * gives the value that makes lm-eval follow the suite's BOS rule, and the argv builder always
 * passes it explicitly.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { TextTokenizer } from '../../checkpoint/tokenizer.ts';
import { UserError } from '../../errors.ts';
import { readJsonlItems, suiteTexts } from '../../eval/index.ts';
import type { Suite } from '../../matrix/suites.ts';

export interface LmEvalTaskFiles {
  /** lm-eval task name (`--tasks`). */
  task: string;
  /** Folder to pass as `--include_path`. */
  includePath: string;
  yamlPath: string;
  dataPath: string;
  /** Documents written (after `limit`). */
  docs: number;
  /** Metrics lm-eval will report, by our metric names. */
  metrics: string[];
}

/** The lm-eval task name of a suite (lm-eval task names: letters, digits, underscores). */
export function lmEvalTaskName(suite: Pick<Suite, 'name'>): string {
  return `lowbit_${suite.name.replace(/[^A-Za-z0-9]+/g, '_')}`;
}

/** Metrics of each task type that lm-eval computes (token_perplexity and kld are ours only). */
const LMEVAL_METRICS: Record<string, readonly string[]> = {
  perplexity: ['word_perplexity', 'byte_perplexity', 'bits_per_byte'],
  multiple_choice: ['acc', 'acc_norm'],
  lastword: ['acc', 'perplexity'],
};

/** A YAML scalar: JSON strings are valid YAML flow scalars, so every string is quoted. */
const q = (s: string) => JSON.stringify(s);

function metricList(names: readonly string[], higherIsBetter: (m: string) => boolean, aggregation: (m: string) => string): string {
  return names.map((m) => `  - metric: ${m}\n    aggregation: ${aggregation(m)}\n    higher_is_better: ${higherIsBetter(m)}`).join('\n');
}

/**
 * Whether lm-eval must add BOS when it encodes text, for the suite's own rule:
 * perplexity 'prefix' = no BOS in the document (only the rolling prefix token), 'document' =
 * BOS inside each document too; context tasks follow `params.addBos`, else the tokenizer's
 * default (as our engine does).
 */
export function lmEvalAddBos(suite: Suite, tok: Pick<TextTokenizer, 'addBosDefault'>, bos?: 'prefix' | 'document'): boolean {
  if (suite.task === 'perplexity') return (bos ?? suite.params.bos) === 'document';
  if (suite.task === 'multiple_choice' || suite.task === 'lastword') return suite.params.addBos ?? tok.addBosDefault;
  throw new UserError(`suite '${suite.name}' (${suite.task}) has no lm-eval counterpart; lm-eval computes no KL divergence`);
}

/** Write `<dir>/<task>.yaml` and `<dir>/<task>.jsonl` for a suite; `limit` keeps the first N documents. */
export function writeLmEvalTask(suite: Suite, dir: string, o: { limit?: number } = {}): LmEvalTaskFiles {
  const task = lmEvalTaskName(suite);
  const metrics = LMEVAL_METRICS[suite.task];
  if (!metrics) throw new UserError(`suite '${suite.name}' (${suite.task}) has no lm-eval counterpart; lm-eval computes no KL divergence`);
  const want = suite.metrics.filter((m) => metrics.includes(m));
  if (want.length === 0) throw new UserError(`suite '${suite.name}' lists none of the metrics lm-eval computes (${metrics.join(', ')})`);
  const abs = resolve(dir);
  mkdirSync(abs, { recursive: true });
  const dataPath = join(abs, `${task}.jsonl`);
  const yamlPath = join(abs, `${task}.yaml`);
  if (/[\n\r]/.test(dataPath)) throw new UserError(`${dataPath}: a path with a line break cannot go into a task YAML; choose another folder`);
  let lines: string[];
  let body: string;
  const head = [`task: ${task}`, `dataset_path: json`, `dataset_kwargs:`, `  data_files:`, `    test: ${q(dataPath)}`, `test_split: test`, `num_fewshot: 0`];
  switch (suite.task) {
    case 'perplexity': {
      lines = suiteTexts(suite, o.limit).map((text) => JSON.stringify({ text }));
      body = [
        `output_type: loglikelihood_rolling`,
        `doc_to_text: ""`,
        `doc_to_target: text`,
        `metric_list:`,
        metricList(want, () => false, (m) => (m === 'bits_per_byte' ? 'bits_per_byte' : 'weighted_perplexity')),
      ].join('\n');
      break;
    }
    case 'multiple_choice': {
      const items = readJsonlItems<{ story: number; context: string; choices: string[]; gold: number }>(suite);
      lines = (o.limit !== undefined ? items.slice(0, o.limit) : items).map((d) => JSON.stringify({ story: d.story, context: d.context, choices: d.choices, gold: d.gold }));
      body = [
        `output_type: multiple_choice`,
        `doc_to_text: context`,
        `doc_to_choice: choices`,
        `doc_to_target: gold`,
        `target_delimiter: ${q(suite.params.targetDelimiter)}`,
        `metric_list:`,
        metricList(want, () => true, () => 'mean'),
      ].join('\n');
      break;
    }
    case 'lastword': {
      const items = readJsonlItems<{ story: number; context: string; target: string }>(suite);
      lines = (o.limit !== undefined ? items.slice(0, o.limit) : items).map((d) => JSON.stringify({ story: d.story, context: d.context, target: d.target }));
      body = [
        `output_type: loglikelihood`,
        `doc_to_text: context`,
        `doc_to_target: target`,
        `target_delimiter: ${q(suite.params.targetDelimiter)}`,
        `metric_list:`,
        metricList(want, (m) => m === 'acc', (m) => (m === 'acc' ? 'mean' : 'perplexity')),
      ].join('\n');
      break;
    }
    default:
      throw new UserError(`suite '${suite.name}' (${suite.task}) has no lm-eval counterpart`);
  }
  if (lines.length === 0) throw new UserError(`suite '${suite.name}' selects no documents; nothing for lm-eval to score`);
  writeFileSync(dataPath, lines.join('\n') + '\n');
  writeFileSync(yamlPath, `# generated by lowbit-bench from ${suite.name}; do not edit\n${head.join('\n')}\n${body}\nmetadata:\n  version: 1\n`);
  return { task, includePath: abs, yamlPath, dataPath, docs: lines.length, metrics: want };
}
