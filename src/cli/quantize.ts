/** `bench quantize`: quantize a model with a scheme and method into a compressed-tensors checkpoint. */
import type { Command } from 'commander';
import { UserError } from '../errors.ts';
import { quantizeModel } from '../quant/index.ts';
import { resolveModelArg } from '../matrix/models.ts';
import { getScheme } from '../quant/schemes.ts';
import type { ScaleDtype } from '../quant/formats/index.ts';
import type { AutoRoundProgress } from '../quant/autoround/index.ts';
import { prepareOutputDir } from './outputs.ts';

/** `--ignore` patterns: exact, substring or re:<regex>; a bad regex is a one-line error before any work. */
export function checkIgnorePatterns(patterns: readonly string[]): void {
  for (const p of patterns) {
    if (!p.startsWith('re:')) continue;
    try {
      new RegExp(p.slice(3));
    } catch (e) {
      throw new UserError(`--ignore '${p}': not a valid regular expression (${(e as Error).message}); fix the pattern after 're:'`, 2, { cause: e });
    }
  }
}

export function parseGroupSize(s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || !(n > 0 || n === -1)) throw new UserError(`--group-size must be a positive integer or -1 (per channel), got '${s}'`);
  return n;
}

function parseScaleDtype(s: string): ScaleDtype {
  const m: Record<string, ScaleDtype> = { f16: 'F16', fp16: 'F16', float16: 'F16', bf16: 'BF16', bfloat16: 'BF16', f32: 'F32', fp32: 'F32', float32: 'F32' };
  const d = m[s.toLowerCase()];
  if (!d) throw new UserError(`--scale-dtype must be f16, bf16 or f32, got '${s}'`);
  return d;
}

interface Opts {
  model: string;
  scheme: string;
  method: string;
  groupSize?: string;
  asym?: boolean;
  out: string;
  json?: boolean;
  force?: boolean;
  ignore?: string[];
  skipUnaligned?: boolean;
  scaleDtype?: string;
  recipe?: string;
  iters?: string;
  lr?: string;
  nsamples?: string;
  seqlen?: string;
  batchSize?: string;
  seed?: string;
  threads?: string;
}

function num(flag: string, v: string | undefined, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new UserError(`${flag} must be ${integer ? 'an integer' : 'a number'}, got '${v}'`);
  return n;
}

/** AutoRound progress on stderr: one updating line on a TTY, a line every 25 iterations otherwise. */
function progressPrinter(): { onProgress: (p: AutoRoundProgress) => void; end: () => void } {
  const tty = process.stderr.isTTY === true;
  let last = 0, open = false;
  return {
    onProgress: (p) => {
      const line = `autoround: block ${p.block + 1}/${p.blocks} iter ${p.iter + 1}/${p.iters} loss ${p.loss.toExponential(4)}`;
      const final = p.iter + 1 === p.iters;
      if (tty) {
        const now = Date.now();
        if (!final && now - last < 100) return;
        last = now;
        process.stderr.write(`\r${line}\x1b[K`);
        open = true;
      } else if (p.iter % 25 === 0 || final) {
        process.stderr.write(line + '\n');
      }
    },
    end: () => { if (open) process.stderr.write('\n'); open = false; },
  };
}

export function register(program: Command): void {
  program
    .command('quantize')
    .description('quantize a model (RTN or AutoRound) and write a compressed-tensors checkpoint')
    .requiredOption('--model <model>', "'stories260k' or a Hugging Face model directory")
    .requiredOption('--scheme <scheme>', 'quantization scheme (see bench schemes)')
    .option('--method <method>', 'rtn or autoround', 'rtn')
    .option('--group-size <n>', 'integer schemes: group size (-1 = per channel)')
    .option('--asym', 'integer schemes: asymmetric weights with zero points')
    .requiredOption('--out <dir>', 'output checkpoint directory')
    .option('--force', 'replace --out if it is a checkpoint written by bench quantize')
    .option('--ignore <names...>', 'layers kept in full precision (exact, substring or re:<regex>)')
    .option('--skip-unaligned', "auto-round's layer selection: int keeps layers whose dims are not multiples of 32 in full precision, MXFP4/NVFP4 those whose input width is not a multiple of the block")
    .option('--scale-dtype <dtype>', 'integer schemes: f16, bf16 or f32 scales (default: bf16 for bf16 models, else f16)')
    .option('--recipe <name>', 'autoround: default, best, light or fast (default: default)')
    .option('--iters <n>', 'autoround: optimisation steps per block (overrides the recipe)')
    .option('--lr <x>', 'autoround: SignSGD learning rate (default 1/iters)')
    .option('--nsamples <n>', 'autoround: calibration samples')
    .option('--seqlen <n>', "autoround: calibration sample length (capped at the model's context)")
    .option('--batch-size <n>', 'autoround: samples per step')
    .option('--seed <n>', 'autoround: seed of calibration choice and sampler (default 42)')
    .option('--threads <n>', 'autoround: worker threads (default: cores; results do not depend on it)')
    .option('--json', 'print a JSON summary on stdout')
    .action(async (o: Opts) => {
      const scheme = getScheme(o.scheme);
      const arFlags = (['recipe', 'iters', 'lr', 'nsamples', 'seqlen', 'batchSize', 'seed', 'threads'] as const).filter((k) => o[k] !== undefined);
      if (o.method !== 'autoround' && arFlags.length)
        throw new UserError(`--${arFlags[0].replace('batchSize', 'batch-size')} applies to --method autoround only; drop it or pass --method autoround`);
      const threads = num('--threads', o.threads, true);
      if (threads !== undefined && threads < 1) throw new UserError(`--threads must be at least 1, got '${o.threads}'`);
      const progress = progressPrinter();
      let groupSize = o.groupSize === undefined ? undefined : parseGroupSize(o.groupSize);
      checkIgnorePatterns(o.ignore ?? []);
      const model = resolveModelArg(o.model);
      // A models.json alias brings its per-model overrides (stories260k: group size 32).
      if (groupSize === undefined && scheme.weights.kind === 'int') groupSize = model.overrides?.groupSize;
      // Every check on --out happens here, before any work; the checkpoint is written into a
      // staging folder beside it and swapped in, with our marker, only when complete.
      const output = prepareOutputDir(o.out, { force: o.force, protect: [model.dir] });
      const summary = await quantizeModel(model.dir, scheme.name, o.method, {
        out: output.stage, groupSize, asym: o.asym, ignore: o.ignore, skipUnaligned: o.skipUnaligned,
        scaleDtype: o.scaleDtype === undefined ? undefined : parseScaleDtype(o.scaleDtype),
        onLayer: (name, i, n) => process.stderr.write(`[${i + 1}/${n}] ${name}\n`),
        autoround: {
          recipe: o.recipe,
          overrides: {
            iters: num('--iters', o.iters, true), lr: num('--lr', o.lr, false), nsamples: num('--nsamples', o.nsamples, true),
            seqlen: num('--seqlen', o.seqlen, true), batchSize: num('--batch-size', o.batchSize, true),
          },
          options: { seed: num('--seed', o.seed, true), threads },
          onProgress: progress.onProgress,
        },
      })
        .then((r) => {
          output.commit();
          return { ...r, out: o.out };
        })
        .finally(() => {
          progress.end();
          output.abort();
        });
      if (o.json) {
        process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
        return;
      }
      process.stdout.write(`${summary.scheme} (${summary.method}) -> ${summary.out}: ${summary.quantized.length} layers quantized, ${summary.skipped.length} kept in full precision, ${summary.seconds.toFixed(2)} s\n`);
      for (const s of summary.skipped) process.stdout.write(`  kept ${s.name}: ${s.reason}\n`);
      const r = summary.record;
      if (r) {
        const f = (x: number) => x.toExponential(3);
        process.stdout.write(`  recipe iters ${r.recipe.iters} lr ${r.recipe.lr} nsamples ${r.recipe.nsamples} seqlen ${r.recipe.seqlen}${r.seqlenCapped ? ` (capped from ${r.requestedSeqlen})` : ''} batch ${r.recipe.batchSize}; peak memory ${r.peakMemoryMB.toFixed(0)} MB\n`);
        r.bestLossPerBlock.forEach((l, b) => process.stdout.write(`  block ${b}: loss ${f(r.firstLossPerBlock[b])} -> ${f(l)} (best iter ${r.bestIterPerBlock[b]}), ${r.secondsPerBlock[b].toFixed(1)} s\n`));
      }
    });
}
