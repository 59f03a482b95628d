/**
 * Record what a real quantizer wrote, for the fakes in test/ to replay (harness/fixtures/).
 *
 *   node --import tsx scripts/record-tool-output.ts --tool auto-round --version 0.16.1 \
 *     --model-dir models/stories260k --output-dir OUT --stderr LOG --argv '["--model",...]' > REC.json
 *
 * The recording holds: the tool and its version, the argv (model and output paths replaced
 * by {model} and {output_dir}), every file under the output directory relative to it (the
 * folder layout), config.json's quantization_config verbatim, every tensor's name, dtype and
 * shape, and the tool's stderr lines (ANSI colours kept, tqdm `\r` redraws split, paths
 * replaced). No tensor data is kept.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { CheckpointTensors } from '../src/checkpoint/tensors.ts';

const args = process.argv.slice(2);
const opt = (name: string): string => {
  const i = args.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= args.length) {
    process.stderr.write(`missing --${name}\n`);
    process.exit(2);
  }
  return args[i + 1];
};
const tool = opt('tool');
const version = opt('version');
const modelDir = resolve(opt('model-dir'));
const outDir = resolve(opt('output-dir'));
const argv = JSON.parse(opt('argv')) as string[];
const stderr = readFileSync(opt('stderr'), 'utf8');

const scrub = (s: string) => s.split(outDir).join('{output_dir}').split(modelDir).join('{model}');
function files(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [relative(outDir, p)];
  });
}
const layout = files(outDir);
const configs = layout.filter((f) => f.endsWith('config.json') && !f.includes('.cache') && 'quantization_config' in JSON.parse(readFileSync(join(outDir, f), 'utf8')));
if (configs.length !== 1) {
  process.stderr.write(`expected one config.json with quantization_config under ${outDir}, found ${configs.length}\n`);
  process.exit(2);
}
const exportDir = join(outDir, configs[0], '..');
const ckpt = CheckpointTensors.open(exportDir);
const tensors = Object.fromEntries(ckpt.names().map((n) => [n, [ckpt.info(n).dtype, ckpt.info(n).shape]]));
ckpt.close();
const recording = {
  tool, version,
  argv: argv.map(scrub),
  exportDir: relative(outDir, exportDir) || '.',
  layout,
  quantization_config: JSON.parse(readFileSync(join(exportDir, 'config.json'), 'utf8')).quantization_config,
  tensors,
  stderr: scrub(stderr).split(/\r|\n/).filter((l) => l.trim().length > 0),
};
process.stdout.write(JSON.stringify(recording, null, 1) + '\n');
