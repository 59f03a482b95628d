/** `bench inspect PATH`: validate a safetensors file or checkpoint dir and list its tensors. */
import type { Command } from 'commander';
import { statSync } from 'node:fs';
import { SafetensorsFile } from '../checkpoint/safetensors.ts';
import { CheckpointTensors } from '../checkpoint/tensors.ts';

export function register(program: Command): void {
  program
    .command('inspect')
    .description('validate a .safetensors file or checkpoint directory and list its tensors')
    .argument('<path>', 'a .safetensors file or a model directory')
    .option('--json', 'print JSON on stdout')
    .action((path: string, opts: { json?: boolean }) => {
      const rows: { name: string; dtype: string; shape: number[]; bytes: number }[] = [];
      if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
        const ckpt = CheckpointTensors.open(path);
        for (const n of ckpt.names()) {
          const t = ckpt.info(n);
          rows.push({ name: n, dtype: t.dtype, shape: t.shape, bytes: t.end - t.begin });
        }
        ckpt.close();
      } else {
        const f = SafetensorsFile.open(path);
        for (const t of [...f.tensors.values()].sort((a, b) => a.begin - b.begin)) {
          rows.push({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.end - t.begin });
        }
        f.close();
      }
      if (opts.json) {
        process.stdout.write(JSON.stringify({ path, tensors: rows }, null, 2) + '\n');
        return;
      }
      const w = Math.max(4, ...rows.map((r) => r.name.length));
      for (const r of rows) process.stdout.write(`${r.name.padEnd(w)}  ${r.dtype.padEnd(7)}  [${r.shape.join(', ')}]\n`);
      process.stdout.write(`${rows.length} tensors, ${rows.reduce((a, r) => a + r.bytes, 0)} bytes\n`);
    });
}
