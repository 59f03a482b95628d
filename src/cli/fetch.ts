/**
 * `bench fetch hf:ORG/NAME[@REV] [--json]`: download a model (config, safetensors weights,
 * tokenizer) or a dataset (`hf:datasets/ORG/NAME`) into the shared HF cache at a revision, with
 * progress, resuming a download that broke off; prints the snapshot folder. Honours HF_ENDPOINT,
 * HF_HUB_CACHE / HF_HOME, HF_HUB_OFFLINE and HF_TOKEN (never printed).
 */
import type { Command } from 'commander';
import { parseHfSpec, resolveSnapshot } from '../hub/index.ts';
import { progressLine } from './options.ts';

export function register(program: Command): void {
  program
    .command('fetch')
    .description('download hf:ORG/NAME[@REVISION] (or hf:datasets/ORG/NAME) into the HF cache; print its snapshot folder')
    .argument('<ref>', 'hf:ORG/NAME[@REVISION]')
    .option('--json', 'print JSON on stdout')
    .action(async (ref: string, opts: { json?: boolean }) => {
      const { repo, revision } = parseHfSpec(ref);
      const progress = progressLine(process.stderr);
      const snap = await resolveSnapshot(repo, revision, {
        onProgress: (done, total, file) => progress.update(`fetch ${repo.name}: ${file} ${(done / 1e6).toFixed(1)}/${(total / 1e6).toFixed(1)} MB`),
      });
      progress.done();
      if (opts.json) process.stdout.write(JSON.stringify({ repo: repo.name, type: repo.type, revision, commit: snap.commit, dir: snap.dir, downloaded: snap.downloaded }) + '\n');
      else process.stdout.write(`${snap.dir}\n`);
    });
}
