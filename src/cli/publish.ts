/**
 * `bench publish --repo ORG/NAME [--type dataset|space|model] [--site DIR] [--runs DIRS] [--dry-run]`:
 * the leaderboard site and run ledgers in one commit to a Hub repository.
 */
import type { Command } from 'commander';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { collectPublishFiles, publish } from '../hub/publish.ts';
import { DEFAULT_RUNS_ROOT } from '../results/runs.ts';

export function register(program: Command): void {
  program
    .command('publish')
    .description('push the leaderboard site (bench report) and run ledgers to a Hub repository in one commit')
    .requiredOption('--repo <org/name>', 'target repository (must exist)')
    .option('--type <type>', 'dataset, space or model', 'dataset')
    .option('--site <dir>', 'site folder written by bench report', 'reports/site')
    .option('--runs <dirs>', `comma-separated run directories (default: every run under ${DEFAULT_RUNS_ROOT})`)
    .option('--message <text>', 'commit title', 'lowbit-bench: publish leaderboard')
    .option('--dry-run', 'list the files and sizes; send nothing')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: { repo: string; type: string; site: string; runs?: string; message: string; dryRun?: boolean; json?: boolean }) => {
      if (!/^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/.test(opts.repo)) throw new UserError(`--repo ${opts.repo}: expected ORG/NAME`);
      if (!['dataset', 'space', 'model'].includes(opts.type)) throw new UserError(`--type ${opts.type}: expected dataset, space or model`);
      const runs = opts.runs
        ? opts.runs.split(',').map((s) => s.trim()).filter(Boolean)
        : existsSync(DEFAULT_RUNS_ROOT)
          ? readdirSync(DEFAULT_RUNS_ROOT, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(DEFAULT_RUNS_ROOT, e.name))
          : [];
      const files = collectPublishFiles(opts.site, runs);
      const total = files.reduce((a, f) => a + f.size, 0);
      if (opts.dryRun) {
        if (opts.json) process.stdout.write(JSON.stringify({ repo: opts.repo, type: opts.type, files: files.map(({ path, size }) => ({ path, size })), bytes: total }, null, 2) + '\n');
        else {
          for (const f of files) process.stdout.write(`${String(f.size).padStart(10)}  ${f.path}\n`);
          process.stdout.write(`${files.length} files, ${total} bytes -> ${opts.type}s/${opts.repo} (dry run: nothing sent)\n`);
        }
        return;
      }
      process.stderr.write(`publishing ${files.length} files (${(total / 1e6).toFixed(2)} MB) to ${opts.type}s/${opts.repo} ...\n`);
      const r = await publish({ type: opts.type as 'dataset' | 'space' | 'model', name: opts.repo }, files, { title: opts.message });
      if (opts.json) process.stdout.write(JSON.stringify({ repo: opts.repo, type: opts.type, commit: r.commit, url: r.url ?? null, files: files.length, bytes: total }) + '\n');
      else process.stdout.write(`committed ${r.commit} (${files.length} files)${r.url ? ` ${r.url}` : ''}\n`);
    });
}
