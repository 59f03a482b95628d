/**
 * Calibration for the external quantizers, in the form they read.
 *
 * Local text (models.json `calibration.path`): the calibration stories (the same 1-500 the
 * embedded path uses, src/quant/calibration.ts) are written as a jsonl of `{"text": ...}`
 * lines, consecutive stories joined until a line holds at least `seqlen` tokens. auto-round's
 * local loader (auto_round/calib_dataset.py `get_local_dataset`, 0.16.1) reads json/jsonl only
 * (a .txt path fails), shuffles the lines with `--seed`, tokenizes each, drops those shorter
 * than `--seqlen` and keeps `--nsamples`; its `:concat=true` option crashes on local files
 * in 0.16.1 (`'list' object has no attribute 'shape'`), hence lines that are long enough.
 * The llm-compressor driver reads the same file.
 *
 * A Hugging Face dataset (`calibration.hf`) goes to auto-round by name: its loaders take a
 * split (`NAME:split=S`) but no revision, so only `revision: "main"` can be honoured.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { loadTokenizer } from '../../checkpoint/tokenizer.ts';
import { UserError } from '../../errors.ts';
import { calibrationStories, defaultCalibrationFile } from '../calibration.ts';

export interface CalibrationJsonl {
  path: string;
  /** Lines written (each >= seqlen tokens). */
  lines: number;
  seqlen: number;
}

export async function writeCalibrationJsonl(modelDir: string, path: string, o: { seqlen: number; nsamples: number; textFile?: string }): Promise<CalibrationJsonl> {
  const tok = await loadTokenizer(modelDir);
  const stories = calibrationStories(readFileSync(o.textFile ?? defaultCalibrationFile(), 'utf8'));
  const out: string[] = [];
  let cur: string[] = [];
  let tokens = 0;
  for (const s of stories) {
    cur.push(s);
    // +1 for the newline that joins stories; BOS counted once per line.
    tokens += tok.encode(s, { addBos: cur.length === 1 }).length + 1;
    if (tokens > o.seqlen) {
      out.push(JSON.stringify({ text: cur.join('\n') }));
      cur = [];
      tokens = 0;
    }
  }
  if (out.length < o.nsamples)
    throw new UserError(`the calibration stories give ${out.length} samples of ${o.seqlen} tokens, fewer than nsamples ${o.nsamples}; lower the recipe's nsamples or seqlen`);
  writeFileSync(path, out.join('\n') + '\n');
  return { path, lines: out.length, seqlen: o.seqlen };
}

/** auto-round's `--dataset` for a Hugging Face calibration set, or a UserError naming what it cannot honour. */
export function hfCalibrationSpec(c: { hf: string; revision: string; split: string }): string {
  if (c.revision !== 'main')
    throw new UserError(`calibration ${c.hf} at revision ${c.revision}: auto-round's dataset loaders take no revision, so only "main" can be honoured; set revision "main" or give a local calibration path`);
  // auto-round's pile-10k loader always reads the train split.
  if (c.hf === 'NeelNanda/pile-10k' && c.split !== 'train')
    throw new UserError(`calibration ${c.hf} split ${c.split}: auto-round's loader for it reads only "train"; set split "train" or give a local calibration path`);
  if (/[:,]/.test(c.split)) throw new UserError(`calibration split '${c.split}' contains ':' or ','; auto-round's dataset spec cannot carry it`);
  return c.hf === 'NeelNanda/pile-10k' ? c.hf : `${c.hf}:split=${c.split}`;
}
