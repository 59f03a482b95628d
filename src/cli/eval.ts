/**
 * `bench eval --model DIR|stories260k --suite NAME [--base DIR] [--json]`: score one model on
 * one suite with the embedded ONNX engine and print its metrics (a table, or JSON on stdout
 * alone; progress goes to stderr).
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { loadTokenizer } from '../checkpoint/tokenizer.ts';
import type { OnnxEngine } from '../engines/onnx/engine.ts';
import { openOnnxCheckpoint } from '../engines/onnx/checkpoint.ts';
import { UserError } from '../errors.ts';
import { loadKldBase, runSuite } from '../eval/index.ts';
import { loadSuite } from '../matrix/suites.ts';
import { resolveModelArg } from '../matrix/models.ts';
import type { MetricValue } from '../results/record.ts';
import { checkWritableFile } from './outputs.ts';

function modelDir(model: string): string {
  return resolveModelArg(model).dir;
}

function positiveInt(flag: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag} must be a positive integer, got '${v}'`);
    return n;
  };
}

function fmt(x: number | null): string {
  if (x === null) return 'N/A';
  return Math.abs(x) >= 1000 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(4) : x.toFixed(6);
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('evaluate one model on one suite with the embedded ONNX engine')
    .requiredOption('--model <dir>', "model directory, or 'stories260k' for the bundled model")
    .requiredOption('--suite <name>', 'suite name (suites/<name>.json) or path to a suite file')
    .option('--base <dir>', 'base (unquantized) model for the kld suite')
    .option('--base-cache <file>', 'kld: cached base log-probs to read if it exists, else to write after computing them')
    .option('--limit <n>', 'score only the first n items (smoke runs only)', positiveInt('--limit'))
    .option('--threads <n>', 'onnxruntime threads', positiveInt('--threads'), 1)
    .option('--items', 'include per-item values in --json output')
    .option('--json', 'print JSON on stdout')
    .action(async (o: { model: string; suite: string; base?: string; baseCache?: string; limit?: number; threads: number; items?: boolean; json?: boolean }) => {
      const suite = loadSuite(o.suite);
      const dir = modelDir(o.model);
      // Before any work: a --base-cache we could not read or write fails now, not after scoring.
      if (o.baseCache !== undefined) {
        if (suite.task !== 'kld') throw new UserError(`--base-cache applies to kld suites only; suite '${suite.name}' is ${suite.task}; drop it`);
        checkWritableFile(o.baseCache, '--base-cache');
      }
      const tok = await loadTokenizer(dir);
      const { engine } = await openOnnxCheckpoint(dir, { maxLength: suite.params.maxLength, threads: o.threads });
      let base: OnnxEngine | undefined;
      try {
        const cached = o.baseCache && existsSync(o.baseCache) ? loadKldBase(o.baseCache) : undefined;
        if (suite.task === 'kld' && !cached) {
          if (!o.base) throw new UserError(`suite '${suite.name}' compares against a base model; pass --base DIR (or --base-cache FILE of a computed base)`);
          base = (await openOnnxCheckpoint(modelDir(o.base), { maxLength: suite.params.maxLength, threads: o.threads })).engine;
        }
        const started = performance.now();
        const tty = process.stderr.isTTY;
        const metrics = await runSuite(suite, engine, tok, {
          limit: o.limit,
          baseEngine: base,
          baseCache: cached,
          baseCachePath: cached ? undefined : o.baseCache,
          onProgress: (p) => process.stderr.write(`${tty ? '\r' : ''}${p.task}: batch ${p.batch}/${p.batches}${tty && p.batch < p.batches ? '' : '\n'}`),
        });
        const seconds = (performance.now() - started) / 1000;
        refuseNonFinite(metrics, suite.name, dir);
        print(metrics, { model: dir, suite: suite.name, seconds, json: o.json, items: o.items, limit: o.limit });
      } finally {
        await engine.close();
        await base?.close();
      }
    });
}

/** No NaN or infinity is ever printed as a result: such a metric fails the command, by name. */
function refuseNonFinite(metrics: MetricValue[], suite: string, model: string): void {
  for (const m of metrics) {
    const bad = !Number.isFinite(m.value) ? `value ${m.value}` : m.stderr !== null && !Number.isFinite(m.stderr) ? `stderr ${m.stderr}` : null;
    if (bad)
      throw new UserError(`${suite}/${m.metric} on ${model} came out ${bad}; the checkpoint produces non-finite numbers (check its weights, scales and config with 'bench inspect')`);
  }
}

function print(metrics: MetricValue[], o: { model: string; suite: string; seconds: number; json?: boolean; items?: boolean; limit?: number }): void {
  if (o.json) {
    const out = metrics.map((m) => (o.items ? m : { ...m, items: undefined }));
    process.stdout.write(JSON.stringify({ model: o.model, suite: o.suite, limit: o.limit ?? null, evalSeconds: o.seconds, metrics: out }, null, 2) + '\n');
    return;
  }
  const rows = metrics.map((m) => [m.metric, fmt(m.value), m.stderr === null ? 'N/A' : `± ${fmt(m.stderr)}`, String(m.n)]);
  const head = ['metric', 'value', 'stderr', 'n'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  process.stdout.write(`${o.suite} on ${o.model}${o.limit ? ` (first ${o.limit} items only)` : ''}, ${o.seconds.toFixed(1)} s\n`);
  process.stdout.write(line(head) + '\n');
  for (const r of rows) process.stdout.write(line(r) + '\n');
  const note = metrics.find((m) => m.extra?.stderrBootstrap);
  if (note) process.stdout.write(`stderr: bootstrap over documents (${note.extra!.bootstrapIters} resamples); lm-eval reports none for these\n`);
}
