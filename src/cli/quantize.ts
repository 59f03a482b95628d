/** `bench quantize`: quantize a model with a scheme and method into a compressed-tensors checkpoint. */
import type { Command } from 'commander';
import { UserError } from '../errors.ts';
import { MODEL_DEFAULTS, quantizeModel, resolveModelDir } from '../quant/index.ts';
import { getScheme } from '../quant/schemes.ts';
import type { ScaleDtype } from '../quant/formats/index.ts';

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
    .option('--force', 'replace --out if it exists')
    .option('--ignore <names...>', 'layers kept in full precision (exact, substring or re:<regex>)')
    .option('--skip-unaligned', "auto-round's exporter rule: keep layers whose dims are not multiples of 32 in full precision")
    .option('--scale-dtype <dtype>', 'integer schemes: f16, bf16 or f32 scales (default: bf16 for bf16 models, else f16)')
    .option('--json', 'print a JSON summary on stdout')
    .action(async (o: Opts) => {
      const scheme = getScheme(o.scheme);
      let groupSize = o.groupSize === undefined ? undefined : parseGroupSize(o.groupSize);
      if (groupSize === undefined && scheme.weights.kind === 'int') groupSize = MODEL_DEFAULTS[o.model]?.groupSize;
      const summary = await quantizeModel(resolveModelDir(o.model), scheme.name, o.method, {
        out: o.out, groupSize, asym: o.asym, ignore: o.ignore, skipUnaligned: o.skipUnaligned, overwrite: o.force,
        scaleDtype: o.scaleDtype === undefined ? undefined : parseScaleDtype(o.scaleDtype),
        onLayer: (name, i, n) => process.stderr.write(`[${i + 1}/${n}] ${name}\n`),
      });
      if (o.json) {
        process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
        return;
      }
      process.stdout.write(`${summary.scheme} (${summary.method}) -> ${summary.out}: ${summary.quantized.length} layers quantized, ${summary.skipped.length} kept in full precision, ${summary.seconds.toFixed(2)} s\n`);
      for (const s of summary.skipped) process.stdout.write(`  kept ${s.name}: ${s.reason}\n`);
    });
}
