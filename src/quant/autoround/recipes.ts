/** AutoRound recipes as data (reference/autoround.md §5); every value can be overridden. */
import { UserError, didYouMean } from '../../errors.ts';

export interface Recipe {
  batchSize: number;
  iters: number;
  seqlen: number;
  nsamples: number;
  /** null = auto: 1/iters (2/iters when iters >= 1000 and bits <= 3). */
  lr: number | null;
}

export const RECIPES: Readonly<Record<string, Recipe>> = {
  default: { batchSize: 8, iters: 200, seqlen: 2048, nsamples: 128, lr: null },
  best: { batchSize: 8, iters: 1000, seqlen: 2048, nsamples: 512, lr: null },
  light: { batchSize: 8, iters: 50, seqlen: 2048, nsamples: 128, lr: 5e-3 },
  fast: { batchSize: 4, iters: 200, seqlen: 512, nsamples: 128, lr: null },
};

export function getRecipe(name: string, overrides: Partial<Recipe> = {}): Recipe {
  const r = RECIPES[name];
  if (!r) throw new UserError(`unknown AutoRound recipe '${name}'; ${didYouMean(name, Object.keys(RECIPES))}`);
  const out: Recipe = { ...r };
  for (const [k, v] of Object.entries(overrides) as [keyof Recipe, number | null | undefined][]) {
    if (v === undefined) continue;
    if (k === 'lr') {
      if (v !== null && !(v > 0 && Number.isFinite(v))) throw new UserError(`--lr must be a positive number, got ${v}`);
    } else if (!(Number.isInteger(v) && (v as number) >= (k === 'iters' ? 0 : 1))) {
      throw new UserError(`--${k === 'batchSize' ? 'batch-size' : k} must be a ${k === 'iters' ? 'non-negative' : 'positive'} integer, got ${v}`);
    }
    (out as unknown as Record<string, number | null>)[k] = v;
  }
  return out;
}

/** auto-round's default learning rate. */
export function autoLr(iters: number, bits: number): number {
  if (iters === 0) return 0;
  return iters >= 1000 && bits <= 3 ? 2 / iters : 1 / iters;
}
