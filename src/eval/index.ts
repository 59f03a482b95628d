/**
 * Public face of evaluation: run a validated suite against an engine and return its
 * metrics. Tasks talk to the model only through `Engine` and to text only through
 * `TextTokenizer`.
 */
import { readFileSync } from 'node:fs';
import type { TextTokenizer } from '../checkpoint/tokenizer.ts';
import type { Engine } from '../engines/engine.ts';
import { UserError } from '../errors.ts';
import type { LastWordSuite, MultipleChoiceSuite, Suite } from '../matrix/suites.ts';
import type { MetricValue } from '../results/record.ts';
import { runKld, type KldBase, type KldMetric } from './kld.ts';
import { runLastWord, type LastWordDoc } from './lastword.ts';
import { runMultipleChoice, type MultipleChoiceDoc } from './multiple-choice.ts';
import { runPerplexity } from './perplexity.ts';
import type { ProgressFn } from './requests.ts';
import { readStories, selectRange } from './text.ts';

export type { ProgressFn } from './requests.ts';
export { loadKldBase, saveKldBase } from './kld.ts';

export interface RunSuiteOptions {
  onProgress?: ProgressFn;
  /** Score only the first N items (smoke runs; never for published numbers). */
  limit?: number;
  /** KLD suites: the base engine, or a cached base (`loadKldBase`), and where to save a freshly computed base. */
  baseEngine?: Engine;
  baseCache?: KldBase;
  baseCachePath?: string;
}

/** Items of a JSONL suite file whose `story` lies in the suite's split. */
export function readJsonlItems<T extends { story: number }>(suite: Suite): T[] {
  let text: string;
  try {
    text = readFileSync(suite.dataPath, 'utf8');
  } catch {
    throw new UserError(`${suite.dataPath}: cannot read suite data; run 'npx tsx scripts/build-suites.ts' to build it`);
  }
  const items: T[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let it: T;
    try {
      it = JSON.parse(line);
    } catch {
      throw new UserError(`${suite.dataPath}:${i + 1}: not a JSON line; rebuild the file with scripts/build-suites.ts`);
    }
    if (typeof it.story !== 'number') throw new UserError(`${suite.dataPath}:${i + 1}: item has no numeric "story"; rebuild the file`);
    if (it.story >= suite.split.from && it.story <= suite.split.to) items.push(it);
  });
  return items;
}

function limited<T>(items: T[], limit?: number): T[] {
  return limit !== undefined ? items.slice(0, limit) : items;
}

/** Every story text a story-format suite scores. */
export function suiteTexts(suite: Suite, limit?: number): string[] {
  return limited(selectRange(readStories(suite.dataPath), suite.split.from, suite.split.to, suite.file), limit);
}

/** How many items (stories, questions) `runSuite` scores for this suite and limit. */
export function suiteItemCount(suite: Suite, limit?: number): number {
  return suite.task === 'perplexity' || suite.task === 'kld' ? suiteTexts(suite, limit).length : limited(readJsonlItems(suite), limit).length;
}

export async function runSuite(suite: Suite, engine: Engine, tok: TextTokenizer, opts: RunSuiteOptions = {}): Promise<MetricValue[]> {
  const task = suite.name;
  const bootstrap = suite.bootstrap;
  const onProgress = opts.onProgress;
  // Shared by the tasks that score a continuation after a context.
  const contextOptions = (s: MultipleChoiceSuite | LastWordSuite) => ({
    task,
    targetDelimiter: s.params.targetDelimiter,
    addBos: s.params.addBos ?? tok.addBosDefault,
    maxLength: Math.min(s.params.maxLength, engine.info.maxLength),
    batchSize: s.params.batchSize,
    onProgress,
  });
  switch (suite.task) {
    case 'perplexity':
      return runPerplexity(suiteTexts(suite, opts.limit), engine, tok, {
        task,
        metrics: suite.metrics,
        maxLength: suite.params.maxLength,
        bos: suite.params.bos,
        batchSize: suite.params.batchSize,
        bootstrap,
        onProgress,
      });
    case 'multiple_choice': {
      const docs = limited(readJsonlItems<MultipleChoiceDoc & { story: number }>(suite), opts.limit);
      return runMultipleChoice(docs, engine, tok, { ...contextOptions(suite), metrics: suite.metrics });
    }
    case 'lastword': {
      const docs = limited(readJsonlItems<LastWordDoc & { story: number }>(suite), opts.limit);
      return runLastWord(docs, engine, tok, { ...contextOptions(suite), metrics: suite.metrics, bootstrap });
    }
    case 'kld': {
      const base = opts.baseCache
        ? { cached: opts.baseCache }
        : opts.baseEngine
          ? { engine: opts.baseEngine, cachePath: opts.baseCachePath }
          : null;
      if (!base) throw new UserError(`${task}: KL divergence needs the base model; pass --base DIR (or a cached base with --base-cache FILE)`);
      return runKld(suiteTexts(suite, opts.limit), engine, tok, {
        task,
        metrics: suite.metrics as readonly KldMetric[],
        windowLength: suite.params.maxLength,
        topK: suite.params.topK,
        score: suite.params.score,
        batchSize: suite.params.batchSize,
        base,
        onProgress,
      });
    }
  }
}
