/**
 * Text rules shared by tasks and suite builders: lm-eval's word and byte counting, the
 * story file format, sentence splitting for the cloze suite and final-word extraction for
 * the last-word suite. Each rule is written down here because the numbers depend on it.
 */
import { readFileSync } from 'node:fs';
import { UserError } from '../errors.ts';

/**
 * Words as lm-eval's generic `count_words`: the number of pieces of `re.split(r"\s+", text)`,
 * so leading/trailing whitespace adds an empty piece ("a b" = 2, " a b" = 3, "" = 1).
 */
export function countWords(text: string): number {
  return text.split(/\s+/u).length;
}

/** Bytes as lm-eval's `count_bytes`: UTF-8 length. */
export function countBytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

export const STORY_SEPARATOR = '<|endoftext|>';

/** Stories of a `<|endoftext|>`-separated file, whitespace around each stripped, empty pieces dropped. */
export function parseStories(text: string): string[] {
  return text
    .split(STORY_SEPARATOR)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function readStories(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`${path}: cannot read story file (${(e as NodeJS.ErrnoException).code ?? e}); run the model/data converter or fix the suite's "data" path`);
  }
  return parseStories(text);
}

/**
 * Select stories by 1-based inclusive range [from, to]. Stories 1-500 of the bundled file
 * are reserved for calibration; suites score 501-1000.
 */
export function selectRange<T>(items: readonly T[], from: number, to: number, where: string): T[] {
  if (to > items.length) throw new UserError(`${where}: range ${from}-${to} needs ${to} items but the data has ${items.length}; fix the suite's range or the data file`);
  return items.slice(from - 1, to);
}

/**
 * Sentence boundaries: a sentence ends after a run of `.`, `!` or `?`, plus any closing
 * quotes or brackets (" ' ” ’ )), when whitespace or the end of the text follows, and only
 * where no double quote is open (an even number of straight `"` before it and as many `“`
 * as `”`), so that "Thank you, Spot. I polish it." stays one sentence inside its quotes,
 * and not after the titles Mr. Mrs. Ms. Dr. St. (TinyStories' "Mrs. Jones").
 * Returns the end offsets (exclusive) of every sentence, the last being text.length when
 * the text does not end on a boundary.
 */
export function sentenceEnds(text: string): number[] {
  const ends: number[] = [];
  const re = /[.!?]+["'”’)]*(?=\s|$)/gu;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    const end = m.index + m[0].length;
    if (m[0] === '.' && /(?:^|[^\p{L}])(?:Mr|Mrs|Ms|Dr|St)$/u.test(text.slice(0, m.index))) continue;
    const before = text.slice(0, end);
    const straight = (before.match(/"/g) ?? []).length;
    const open = (before.match(/“/g) ?? []).length;
    const close = (before.match(/”/g) ?? []).length;
    if (straight % 2 === 0 && open <= close) ends.push(end);
  }
  if (ends.length === 0 || ends[ends.length - 1] < text.trimEnd().length) ends.push(text.length);
  return ends;
}

/**
 * Split a story into (everything before its last sentence, the last sentence). The
 * context keeps the whitespace that separated it from the last sentence (a space or a
 * paragraph break); the sentence has no surrounding whitespace. Null when the story has
 * fewer than two sentences.
 */
export function splitLastSentence(story: string): { context: string; sentence: string } | null {
  const text = story.trimEnd();
  const ends = sentenceEnds(text);
  if (ends.length < 2) return null;
  const cut = ends[ends.length - 2];
  const rest = text.slice(cut);
  const lead = rest.length - rest.trimStart().length;
  const sentence = rest.trim();
  if (!sentence) return null;
  return { context: text.slice(0, cut + lead), sentence };
}

/**
 * The final word of a story: the last run of letters/digits (joined by internal ' ’ or -,
 * e.g. "didn't", "ice-cream") containing at least one letter. The context is the text
 * before the word, kept exactly (including the space before it); whatever follows the word
 * (closing punctuation and quotes) is dropped and never part of the target.
 */
export function splitLastWord(story: string): { context: string; word: string; dropped: string } | null {
  const m = /([\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*)([^\p{L}\p{N}]*)$/u.exec(story.trimEnd());
  if (!m || !/\p{L}/u.test(m[1])) return null;
  const text = story.trimEnd();
  const context = text.slice(0, m.index);
  if (!context.trim()) return null;
  return { context, word: m[1], dropped: m[2] };
}
