/**
 * The runner trusts nothing it did not check: the item set is part of a job's identity,
 * cached results pass the record schema, cached checkpoints are hashed before reuse,
 * leftovers of killed processes are cleaned, and a signal releases the run lock.
 * In-process with the deterministic fake handlers of test/runner (scores are a pure
 * function of the checkpoint bytes, so a corrupt checkpoint would show in the numbers).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { UserError } from '../../src/errors.ts';
import { planRun, type EvalJob, type QuantizeJob } from '../../src/matrix/plan.ts';
import { readLedger } from '../../src/results/ledger.ts';
import { resultRecordSchema } from '../../src/results/record.ts';
import { parseShard, shardPlan } from '../../src/runner/shard.ts';
import { mergeRuns } from '../../src/results/merge.ts';
import { runPlan } from '../../src/runner/run.ts';
import { fakeHandlers, type Calls } from '../runner/fixtures/fake-handlers.ts';
import { makeProject, modelsJson } from '../runner/fixtures/project.ts';
import { stable } from '../runner/fixtures/normalize.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const newCalls = (): Calls => ({ quantize: 0, base: 0, evaluate: 0 });
const small = () => makeProject(modelsJson({ schemes: ['BF16', 'W4A16'], methods: ['rtn'], recipes: ['default'] }));
const planOf = (root: string, limit?: number) => planRun({ root, toolVersion: '0.0.0-test', limit });
const quiet = { log: () => {} };

test('--limit is part of identity: a limit-5 run, then a full run recomputes every eval, and records carry coverage', async () => {
  const root = small();
  const lim = planOf(root, 5);
  const full = planOf(root);
  const ids = (p: typeof full, k: string) => p.jobs.filter((j) => j.kind === k).map((j) => j.id);
  assert.deepEqual(ids(lim, 'quantize'), ids(full, 'quantize'), 'quantization does not depend on --limit');
  for (const k of ['eval', 'base']) for (const id of ids(lim, k)) assert.ok(!ids(full, k).includes(id), `${k} ids differ`);

  const c1 = newCalls();
  await runPlan(lim, fakeHandlers({ delayMs: 0, calls: c1 }), { runId: 'smoke', ...quiet });
  const c2 = newCalls();
  const s2 = await runPlan(full, fakeHandlers({ delayMs: 0, calls: c2 }), { runId: 'full', ...quiet });
  assert.deepEqual(c2, { quantize: 0, base: 1, evaluate: 4 }, 'every eval and the base distribution are recomputed; checkpoints are reused');
  assert.equal(s2.cached, 1);
  const smoke = readLedger(join(root, '.bench', 'runs', 'smoke'));
  const whole = readLedger(join(root, '.bench', 'runs', 'full'));
  const data = full.suites.find((s) => s.name === 'ppl')!.dataSha256;
  const ppl = (rs: typeof whole) => rs.find((r) => r.suite === 'ppl' && r.scheme === 'W4A16')!;
  assert.deepEqual(ppl(smoke).coverage, { items: 5, limit: 5, dataSha256: data });
  assert.deepEqual(ppl(whole).coverage, { items: 10, limit: null, dataSha256: data });
  // dataSha256 names the data bytes: the suite's one file, hashed independently here.
  const { createHash } = await import('node:crypto');
  const fileSha = createHash('sha256').update(readFileSync(join(root, 'suites', 'data', 'stories.txt'))).digest('hex');
  assert.equal(data, createHash('sha256').update(JSON.stringify({ 'data/stories.txt': fileSha })).digest('hex'));
  for (const r of [...smoke, ...whole]) assert.ok(resultRecordSchema.safeParse(r).success);
  // The smoke results stay cached under their own identity.
  const c3 = newCalls();
  await runPlan(planOf(root, 5), fakeHandlers({ delayMs: 0, calls: c3 }), { runId: 'smoke2', ...quiet });
  assert.deepEqual(c3, newCalls());
});

test('one run never mixes item sets: resuming with another --limit, or over records without coverage, is refused', async () => {
  const root = small();
  await runPlan(planOf(root, 5), fakeHandlers({ delayMs: 0, calls: newCalls() }), { runId: 'm', ...quiet });
  const before = readFileSync(join(root, '.bench', 'runs', 'm', 'ledger.jsonl'), 'utf8');
  await assert.rejects(runPlan(planOf(root), fakeHandlers({ delayMs: 0, calls: newCalls() }), { resume: true, ...quiet }), (e: Error) => e instanceof UserError && /the first 5 items .* every item .* never mixes/.test(e.message));
  assert.equal(readFileSync(join(root, '.bench', 'runs', 'm', 'ledger.jsonl'), 'utf8'), before, 'nothing appended');
  // The same --limit resumes fine.
  await runPlan(planOf(root, 5), fakeHandlers({ delayMs: 0, calls: newCalls() }), { resume: true, ...quiet });
  // A ledger written before coverage existed: its item set is unknown, so it is not extended.
  const old = join(root, '.bench', 'runs', 'old');
  mkdirSync(old, { recursive: true });
  const rec = readLedger(join(root, '.bench', 'runs', 'm'))[0];
  const { coverage: _c, ...legacy } = rec;
  writeFileSync(join(old, 'ledger.jsonl'), JSON.stringify(legacy) + '\n');
  assert.ok(resultRecordSchema.safeParse(legacy).success, 'old records still pass the ledger schema');
  await assert.rejects(runPlan(planOf(root, 5), fakeHandlers({ delayMs: 0, calls: newCalls() }), { runId: 'old', ...quiet }), /an unrecorded item set/);
});

test('cached results that fail the record schema ("abc", null, NaN, wrong job) are recomputed with a warning', async () => {
  const root = small();
  const plan = planOf(root);
  await runPlan(plan, fakeHandlers({ delayMs: 0, calls: newCalls() }), { runId: 'a', ...quiet });
  const good = readLedger(join(root, '.bench', 'runs', 'a'));
  const evals = plan.jobs.filter((j): j is EvalJob => j.kind === 'eval');
  const res = (id: string) => join(root, '.bench', 'cache', 'results', `${id}.json`);
  const valid = JSON.parse(readFileSync(res(evals[3].id), 'utf8'));
  writeFileSync(res(evals[0].id), '"abc"');
  writeFileSync(res(evals[1].id), 'null');
  writeFileSync(res(evals[2].id), JSON.stringify({ ...valid, jobId: evals[2].id, metrics: [{ ...valid.metrics[0], value: null }] }));
  writeFileSync(res(evals[3].id), JSON.stringify({ ...valid, jobId: evals[0].id }));
  const warnings: string[] = [];
  const calls = newCalls();
  const s = await runPlan(plan, fakeHandlers({ delayMs: 0, calls }), { runId: 'b', log: (w) => warnings.push(w) });
  assert.equal(calls.evaluate, 4);
  assert.equal(s.failed.length, 0);
  assert.equal(warnings.length, 4, warnings.join('\n'));
  assert.ok(warnings.every((w) => /^warning: cached result of .* is unusable .*; recomputing it$/.test(w)));
  assert.match(warnings[0], /expected object/);
  assert.deepEqual(readLedger(join(root, '.bench', 'runs', 'b')).map(stable), good.map(stable));
});

test('a result that would not pass the schema is never written: non-finite item values fail the job by name', async () => {
  const root = small();
  const h = fakeHandlers({ delayMs: 0, calls: newCalls() });
  const bad = {
    ...h,
    evaluate: async (j: EvalJob, ctx: Parameters<typeof h.evaluate>[1]) => {
      const out = (await h.evaluate(j, ctx)) as { metrics: { items?: { values: number[] } }[] };
      out.metrics[0].items!.values[1] = Infinity;
      return out as never;
    },
  };
  const s = await runPlan(planOf(root), bad, { runId: 'x', ...quiet });
  assert.equal(s.failed.length, 4);
  assert.match(s.failed[0].error, /^tiny BF16 base on ppl: ppl\/score: item value Infinity is not a finite number$/);
  assert.deepEqual(existsSync(join(root, '.bench', 'cache', 'results')) ? readdirSync(join(root, '.bench', 'cache', 'results')) : [], []);
  assert.equal(existsSync(join(root, '.bench', 'runs', 'x', 'ledger.jsonl')), false);
});

/** Flip one bit in the middle of a file, keeping its size and its mtime. */
function flipBit(path: string): void {
  const st = statSync(path);
  const b = readFileSync(path);
  b[b.length >> 1] ^= 0x10;
  writeFileSync(path, b);
  utimesSync(path, st.atimeMs / 1000, st.mtimeMs / 1000);
  // Equal to the microsecond (JS numbers cannot carry the nanoseconds back).
  assert.ok(Math.abs(statSync(path).mtimeMs - st.mtimeMs) < 1e-3 && statSync(path).size === st.size);
}

/** run-fake.ts in a fresh process, as a new `bench run` would be: its JSON lines. */
function runFakeProcess(args: Record<string, unknown>): { type: string; [k: string]: any }[] {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'runner', 'fixtures', 'run-fake.ts'), JSON.stringify(args)], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
}

test('a cached checkpoint with one flipped bit (same size, same mtime) is detected, recomputed and never published', { timeout: 120_000 }, async () => {
  const root = small();
  const plan = planOf(root, 5);
  await runPlan(plan, fakeHandlers({ delayMs: 0, calls: newCalls() }), { runId: 'clean', ...quiet });
  const clean = readLedger(join(root, '.bench', 'runs', 'clean'));
  const q = plan.jobs.find((j): j is QuantizeJob => j.kind === 'quantize')!;
  const file = join(root, '.bench', 'cache', 'ckpt', q.id, 'model.bin');
  const intact = readFileSync(file);
  flipBit(file);
  const common = { root, benchDir: join(root, '.bench'), jobs: 1, delayMs: 0, limit: 5 };
  // A run whose evals are all cached reads no checkpoint: nothing to verify, nothing recomputed.
  const noop = runFakeProcess({ ...common, runId: 'noop' });
  assert.deepEqual(noop.at(-1)!.calls, newCalls());
  // Evals that must read it (their results dropped from the cache): the checkpoint is hashed first.
  for (const j of plan.jobs) if (j.kind === 'eval') writeFileSync(join(root, '.bench', 'cache', 'results', `${j.id}.json`), 'null');
  const lines = runFakeProcess({ ...common, runId: 'again' });
  const end = lines.at(-1)!;
  assert.equal(end.summary.failed.length, 0, JSON.stringify(end.summary.failed));
  assert.equal(end.calls.quantize, 1, 'the corrupt checkpoint was recomputed');
  const warnings = lines.filter((l) => l.type === 'log').map((l) => l.text as string);
  assert.ok(warnings.includes(`warning: ${q.label}: ckpt ${q.id.slice(0, 12)}: model.bin does not match its recorded sha256 (changed on disk since it was written); removing it and recomputing`), warnings.join('\n'));
  assert.deepEqual(readFileSync(file), intact, 'the recomputed checkpoint is the intact one');
  // The fake evaluator throws on a corrupt checkpoint, and its scores hash the checkpoint bytes:
  // records equal to the clean run's prove that no corrupt byte reached a published number.
  assert.deepEqual(readLedger(join(root, '.bench', 'runs', 'again')).map(stable), clean.map(stable));
});

test('staging leftovers of killed processes (.tmp-*, ..tmp-*.tmp-*, .old-*) are removed at the next run; a live one is kept', async () => {
  const root = small();
  const plan = planOf(root);
  const cache = join(root, '.bench', 'cache');
  const id16 = plan.jobs.find((j) => j.kind === 'quantize')!.id.slice(0, 16);
  const dead = [
    join(cache, 'ckpt', `.tmp-${id16}-999999999-abcd1234`),
    join(cache, 'ckpt', `..tmp-${id16}-999999999-abcd1234.tmp-999999999-1765000000000`),
    join(cache, 'ckpt', `..tmp-${id16}-999999999-abcd1234.old-999999999-1765000000000`),
    join(cache, 'base', `..tmp-${id16}-999999999-0123abcd.tmp-999999999-1765000000000`),
  ];
  const live = join(cache, 'ckpt', `..tmp-${id16}-${process.ppid}-abcd1234.tmp-${process.ppid}-1765000000000`);
  for (const d of [...dead, live]) {
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'model.safetensors'), 'partial');
  }
  const s = await runPlan(plan, fakeHandlers({ delayMs: 0, calls: newCalls() }), { runId: 'r', ...quiet });
  assert.equal(s.failed.length, 0);
  for (const d of dead) assert.ok(!existsSync(d), d);
  assert.ok(existsSync(live), 'a live process\'s staging folder is not touched');
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  test(`${sig} during a run releases run.lock; the run resumes to the uninterrupted ledger`, { timeout: 120_000 }, async () => {
    const root = small();
    const benchDir = join(root, '.bench');
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'runner', 'fixtures', 'run-fake.ts'), JSON.stringify({ root, benchDir, runId: 'sig', jobs: 1, delayMs: 150 })], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
    await new Promise<void>((res) => child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('"job-start"')) res();
    }));
    assert.ok(existsSync(join(benchDir, 'runs', 'sig', 'run.lock')));
    child.kill(sig);
    const r = await exited;
    assert.equal(r.signal, sig, 'the signal still ends the process as it would have');
    assert.ok(!existsSync(join(benchDir, 'runs', 'sig', 'run.lock')), 'lock released');
    const s = await runPlan(planOf(root), fakeHandlers({ delayMs: 0, calls: newCalls() }), { benchDir, resume: true, ...quiet });
    assert.equal(s.runId, 'sig');
    const ref = small();
    await runPlan(planOf(ref), fakeHandlers({ delayMs: 0, calls: newCalls() }), { runId: 'sig', ...quiet });
    assert.deepEqual(readLedger(join(benchDir, 'runs', 'sig')).map(stable), readLedger(join(ref, '.bench', 'runs', 'sig')).map(stable));
  });
}

test('--shard: integers with 1 <= i <= n <= the plan\'s job count, refused at once otherwise', () => {
  const plan = planOf(small());
  const n = plan.jobs.length;
  for (const bad of ['1/99999999999999999999', '1/50000000', `1/${n + 1}`, '0/2', '3/2', '1/0', '-1/2', '1.5/2', '1/2.0', 'a/b', '1/', '/2', '1/2/3', ''])
    assert.throws(() => {
      const t0 = performance.now();
      try {
        shardPlan(plan, bad);
      } finally {
        assert.ok(performance.now() - t0 < 100, 'answered at once');
      }
    }, (e: Error) => e instanceof UserError && /^--shard/.test(e.message) && !e.message.includes('\n'), bad);
  assert.deepEqual(parseShard(`${n}/${n}`, n), { index: n, count: n });
  // n = job count is allowed, and every job lands in exactly one shard (base jobs are replicated).
  const seen = new Map<string, number>();
  for (let i = 1; i <= n; i++) for (const j of shardPlan(plan, `${i}/${n}`).jobs) seen.set(j.id, (seen.get(j.id) ?? 0) + 1);
  for (const j of plan.jobs) assert.ok(seen.get(j.id)! >= 1 && (j.kind === 'base' || seen.get(j.id) === 1), j.label);
});

test('merge refuses shards that cover different item sets in one cell', async () => {
  const root = small();
  await runPlan(planOf(root, 5), fakeHandlers({ delayMs: 0, calls: newCalls() }), { runId: 's1', ...quiet });
  await runPlan(planOf(root), fakeHandlers({ delayMs: 0, calls: newCalls() }), { runId: 's2', ...quiet });
  const runs = join(root, '.bench', 'runs');
  assert.throws(() => mergeRuns([join(runs, 's1'), join(runs, 's2')], join(root, 'merged')), (e: Error) => e instanceof UserError && /cover different items in tiny\/BF16\/base\/ppl \(every item .* vs the first 5 items/.test(e.message));
  assert.ok(!existsSync(join(root, 'merged')));
  // Shards of one run merge as before.
  assert.deepEqual(mergeRuns([join(runs, 's1')], join(root, 'merged')), { records: 8, runs: 1 });
});
