/**
 * Deterministic builders of the derived suite data (cloze and last-word items) from the
 * scored stories. `scripts/build-suites.ts` writes their output to `suites/data/`; the
 * tests rebuild it and compare bytes. Same stories + same seed = same bytes.
 */
import { join } from 'node:path';
import { SplitMix64 } from '../stats/index.ts';
import { readStories, selectRange, splitLastSentence, splitLastWord } from './text.ts';

export interface ClozeItem {
  /** 1-based story number in the source file. */
  story: number;
  /** Story up to its last sentence, keeping the whitespace before that sentence. */
  context: string;
  choices: string[];
  gold: number;
}

export interface LastWordItem {
  story: number;
  /** Story up to the final word, including the whitespace before it. */
  context: string;
  /** The final word, without the trailing punctuation. */
  target: string;
}

export const CLOZE_SEED = 20240601;
export const CLOZE_CHOICES = 4;

/**
 * Cloze items: for each story (numbered from `firstNumber`) with at least two sentences,
 * context = story without its last sentence, choices = its real last sentence and
 * `CLOZE_CHOICES - 1` last sentences of other stories (distinct texts, none equal to the
 * real one), drawn with SplitMix64(seed); the real sentence is put at a position drawn
 * from the same generator (gold). Stories with fewer than two sentences are skipped.
 */
export function buildCloze(stories: readonly string[], firstNumber: number, seed = CLOZE_SEED): ClozeItem[] {
  const parts = stories.map((s, i) => ({ story: firstNumber + i, split: splitLastSentence(s) }));
  const usable = parts.filter((p) => p.split !== null) as { story: number; split: { context: string; sentence: string } }[];
  const pool = usable.map((p) => p.split.sentence);
  const rng = new SplitMix64(seed);
  return usable.map((p, i) => {
    const real = p.split.sentence;
    const picked: string[] = [];
    // Rejection sampling over other stories' last sentences; the pool is large, so this ends fast.
    let guard = 0;
    while (picked.length < CLOZE_CHOICES - 1) {
      if (++guard > 100000) throw new Error('cloze builder: not enough distinct distractor sentences');
      const j = rng.nextInt(pool.length);
      if (j === i || pool[j] === real || picked.includes(pool[j])) continue;
      picked.push(pool[j]);
    }
    const gold = rng.nextInt(CLOZE_CHOICES);
    const choices = [...picked];
    choices.splice(gold, 0, real);
    return { story: p.story, context: p.split.context, choices, gold };
  });
}

/** Last-word items for every story whose final word exists (see `splitLastWord`). */
export function buildLastWord(stories: readonly string[], firstNumber: number): LastWordItem[] {
  const out: LastWordItem[] = [];
  stories.forEach((s, i) => {
    const w = splitLastWord(s);
    if (w) out.push({ story: firstNumber + i, context: w.context, target: w.word });
  });
  return out;
}

/** JSON lines with a fixed key order, one item per line, trailing newline. */
export function toJsonl(items: readonly object[]): string {
  return items.map((it) => JSON.stringify(it)).join('\n') + '\n';
}

/** The bundled story file and the derived files, relative to suites/. */
export const STORIES_FILE = 'data/tinystories_validation_first1000.txt';
export const SUITE_DATA_FILES = {
  cloze: 'data/tinystories-cloze.jsonl',
  lastword: 'data/tinystories-lastword.jsonl',
} as const;
/** Scored stories (1-based, inclusive); 1-500 are reserved for calibration. */
export const SCORED_FROM = 501;
export const SCORED_TO = 1000;

/** The full text of every derived suite data file, keyed as SUITE_DATA_FILES. */
export function buildSuiteData(suitesDir: string): Record<keyof typeof SUITE_DATA_FILES, string> {
  const path = join(suitesDir, STORIES_FILE);
  const scored = selectRange(readStories(path), SCORED_FROM, SCORED_TO, path);
  return {
    cloze: toJsonl(buildCloze(scored, SCORED_FROM)),
    lastword: toJsonl(buildLastWord(scored, SCORED_FROM)),
  };
}
