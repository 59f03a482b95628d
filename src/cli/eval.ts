/**
 * `bench eval --model DIR|stories260k --suite NAME [--engine E] [--bos prefix|document] [--json]`:
 * score one model on one suite and print its metrics (a table, or JSON on stdout alone;
 * progress goes to stderr). `--engine` picks who computes them (src/eval/by-engine.ts): the
 * embedded ONNX engine (default), our client against `bench serve` or a real `vllm serve`, or
 * real lm-eval (`hf`, or `local-completions` against `bench serve`).
 */
import type { Command } from 'commander';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { UserError } from '../errors.ts';
import { EVAL_ENGINES, evaluateByEngine, type EvalEngine } from '../eval/by-engine.ts';
import { loadSuite } from '../matrix/suites.ts';
import { resolveModelArg } from '../matrix/models.ts';
import type { MetricValue } from '../results/record.ts';
import { checkOutFile } from '../outputs.ts';

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

function oneOf<T extends string>(flag: string, values: readonly T[]) {
  return (v: string): T => {
    if (!(values as readonly string[]).includes(v)) throw new UserError(`${flag} must be one of ${values.join(', ')}, got '${v}'`);
    return v as T;
  };
}

function fmt(x: number | null): string {
  if (x === null) return 'N/A';
  return Math.abs(x) >= 1000 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(4) : x.toFixed(6);
}

interface EvalFlags {
  model: string;
  suite: string;
  engine: EvalEngine;
  bos?: 'prefix' | 'document';
  workDir?: string;
  base?: string;
  baseCache?: string;
  limit?: number;
  threads: number;
  items?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('evaluate one model on one suite (embedded ONNX engine, or --engine serve|vllm|lmeval-hf|lmeval-completions)')
    .requiredOption('--model <dir>', "model directory, or 'stories260k' for the bundled model")
    .requiredOption('--suite <name>', 'suite name (suites/<name>.json) or path to a suite file')
    .option('--engine <name>', `who computes: ${EVAL_ENGINES.join(', ')}`, oneOf('--engine', EVAL_ENGINES), 'onnx')
    .option('--bos <rule>', "perplexity BOS rule: 'prefix' (BOS only as the rolling prefix; our default) or 'document' (BOS inside each document too; lm-eval's default for a BOS-adding tokenizer)", oneOf('--bos', ['prefix', 'document'] as const))
    .option('--work-dir <dir>', 'where server logs, generated lm-eval tasks and lm-eval output go (default: a new temp folder)')
    .option('--base <dir>', 'base (unquantized) model for the kld suite')
    .option('--base-cache <file>', 'kld: cached base log-probs to read if it exists, else to write after computing them')
    .option('--limit <n>', 'score only the first n items (smoke runs only)', positiveInt('--limit'))
    .option('--threads <n>', 'onnxruntime threads', positiveInt('--threads'), 1)
    .option('--items', 'include per-item values in --json output')
    .option('--json', 'print JSON on stdout')
    .action(async (o: EvalFlags) => {
      const suite = loadSuite(o.suite);
      const dir = modelDir(o.model);
      // Before any work: a --base-cache we could not read or write fails now, not after scoring.
      if (o.baseCache !== undefined) {
        if (suite.task !== 'kld') throw new UserError(`--base-cache applies to kld suites only; suite '${suite.name}' is ${suite.task}; drop it`);
        checkOutFile('--base-cache', o.baseCache);
      }
      const workDir = o.workDir ? resolve(o.workDir) : mkdtempSync(join(tmpdir(), 'bench-eval-'));
      const started = performance.now();
      const tty = process.stderr.isTTY;
      const r = await evaluateByEngine(suite, {
        engine: o.engine,
        dir,
        limit: o.limit,
        threads: o.threads,
        bos: o.bos,
        workDir,
        base: o.base ? modelDir(o.base) : undefined,
        baseCache: o.baseCache,
        onProgress: (p) => process.stderr.write(`${tty ? '\r' : ''}${p.task}: batch ${p.batch}/${p.batches}${tty && p.batch < p.batches ? '' : '\n'}`),
      });
      const seconds = (performance.now() - started) / 1000;
      refuseNonFinite(r.metrics, suite.name, dir);
      print(r.metrics, { model: dir, suite: suite.name, engine: o.engine, provenance: r.provenance, seconds, json: o.json, items: o.items, limit: o.limit });
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

function print(metrics: MetricValue[], o: { model: string; suite: string; engine: string; provenance: Record<string, unknown>; seconds: number; json?: boolean; items?: boolean; limit?: number }): void {
  if (o.json) {
    const out = metrics.map((m) => (o.items ? m : { ...m, items: undefined }));
    process.stdout.write(JSON.stringify({ model: o.model, suite: o.suite, engine: o.engine, limit: o.limit ?? null, evalSeconds: o.seconds, provenance: o.provenance, metrics: out }, null, 2) + '\n');
    return;
  }
  const rows = metrics.map((m) => [m.metric, fmt(m.value), m.stderr === null ? 'N/A' : `± ${fmt(m.stderr)}`, String(m.n)]);
  const head = ['metric', 'value', 'stderr', 'n'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  const bos = typeof o.provenance.bos === 'string' ? `, BOS ${o.provenance.bos}` : '';
  process.stdout.write(`${o.suite} on ${o.model} by ${o.engine}${bos}${o.limit ? ` (first ${o.limit} items only)` : ''}, ${o.seconds.toFixed(1)} s\n`);
  process.stdout.write(line(head) + '\n');
  for (const r of rows) process.stdout.write(line(r) + '\n');
  const note = metrics.find((m) => m.extra?.stderrBootstrap);
  if (note) process.stdout.write(`stderr: bootstrap over documents (${note.extra!.bootstrapIters} resamples); lm-eval reports none for these\n`);
}
