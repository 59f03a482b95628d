/**
 * Record what a real quantizer wrote, for the fakes in test/ to replay (harness/fixtures/).
 *
 *   node --import tsx scripts/record-tool-output.ts --tool auto-round --version 0.16.1 \
 *     --model-dir models/stories260k --output-dir OUT --stderr LOG --argv '["--model",...]' > REC.json
 *
 * The recording holds: the tool and its version, the argv (model and output paths replaced
 * by {model} and {output_dir}), every file under the output directory relative to it (the
 * folder layout), config.json verbatim (and its quantization_config on its own), every tensor's name, dtype and
 * shape, and the tool's stderr lines (ANSI colours kept, tqdm `\r` redraws split, paths
 * replaced), and the text of small files the tool generated (JSON under 2 KB that is not a copy
 * of the model directory's, e.g. generation_config.json). No tensor data is kept.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
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
/** A small JSON file the tool wrote itself: not config.json, and not a copy of the model's file. */
function generated(f: string): boolean {
  const base = f.split('/').pop()!;
  if (!f.endsWith('.json') || statSync(join(outDir, f)).size >= 2048 || ['config.json', 'quantization_config.json'].includes(base)) return false;
  const src = join(modelDir, base);
  return !existsSync(src) || readFileSync(src, 'utf8') !== readFileSync(join(outDir, f), 'utf8');
}
const recording = {
  tool, version,
  argv: argv.map(scrub),
  exportDir: relative(outDir, exportDir) || '.',
  layout,
  quantization_config: JSON.parse(readFileSync(join(exportDir, 'config.json'), 'utf8')).quantization_config,
  config: JSON.parse(scrub(readFileSync(join(exportDir, 'config.json'), 'utf8'))),
  tensors,
  files: Object.fromEntries(layout.filter((f) => generated(f)).map((f) => [f, scrub(readFileSync(join(outDir, f), 'utf8'))])),
  stderr: scrub(stderr).split(/\r|\n/).filter((l) => l.trim().length > 0),
};
process.stdout.write(JSON.stringify(recording, null, 1) + '\n');
