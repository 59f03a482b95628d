/**
 * Calibration data for AutoRound on the embedded path: TinyStories validation stories 1-500
 * (the scored stories are 501-1000 and never used here), stories separated by
 * `<|endoftext|>`, whitespace stripped, each tokenized with BOS first, concatenated and cut
 * into seqlen-token samples; `nsamples` of them are chosen with the seed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.ts';
import { loadTokenizer } from '../checkpoint/tokenizer.ts';
import { readModelConfig } from '../checkpoint/config.ts';
import { mulberry32, shuffle } from './autoround/optimize.ts';

export const CALIBRATION_STORIES = 500;
const DATA = 'suites/data/tinystories_validation_first1000.txt';

export function defaultCalibrationFile(): string {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return join(root, DATA);
}

/** The first `count` stories of the file (never the scored 501-1000). */
export function calibrationStories(text: string, count = CALIBRATION_STORIES): string[] {
  const stories = text.split('<|endoftext|>').map((s) => s.trim()).filter((s) => s.length > 0);
  if (stories.length < count) throw new UserError(`calibration text has ${stories.length} stories, need ${count}; use the bundled ${DATA}`);
  return stories.slice(0, count);
}

export interface CalibrationSet {
  /** nsamples × seqlen token ids, row-major. */
  ids: Int32Array;
  nsamples: number;
  seqlen: number;
  /** seqlen was lowered to the model's max positions. */
  seqlenCapped: boolean;
  requestedSeqlen: number;
}

/** Cut a token stream into samples and pick nsamples with the seed (order seeded too). */
export function sampleWindows(stream: ArrayLike<number>, seqlen: number, nsamples: number, seed: number): Int32Array {
  const windows = Math.floor(stream.length / seqlen);
  if (windows < nsamples)
    throw new UserError(`calibration text gives ${windows} samples of ${seqlen} tokens, fewer than nsamples ${nsamples}; lower nsamples or seqlen (bench quantize --nsamples/--seqlen, or the recipe's values)`);
  const order = shuffle(windows, mulberry32(seed ^ 0x5eed));
  const ids = new Int32Array(nsamples * seqlen);
  for (let i = 0; i < nsamples; i++) {
    const w = order[i];
    for (let t = 0; t < seqlen; t++) ids[i * seqlen + t] = stream[w * seqlen + t];
  }
  return ids;
}

export async function buildCalibration(modelDir: string, o: { seqlen: number; nsamples: number; seed: number; file?: string }): Promise<CalibrationSet> {
  const cfg = readModelConfig(modelDir);
  const file = o.file ?? defaultCalibrationFile();
  if (!existsSync(file)) throw new UserError(`calibration text ${file} is missing; restore ${DATA} from the repository`);
  const seqlen = Math.min(o.seqlen, cfg.maxPositions);
  const tok = await loadTokenizer(modelDir);
  const stream: number[] = [];
  for (const story of calibrationStories(readFileSync(file, 'utf8'))) {
    const ids = tok.encode(story, { addBos: true });
    for (const id of ids) stream.push(id);
  }
  return { ids: sampleWindows(stream, seqlen, o.nsamples, o.seed), nsamples: o.nsamples, seqlen, seqlenCapped: seqlen < o.seqlen, requestedSeqlen: o.seqlen };
}
