import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { UserError } from '../../src/errors.ts';
import { planRun, type EvalJob } from '../../src/matrix/plan.ts';
import { readLedger } from '../../src/results/ledger.ts';
import { cacheStatus, runPlan, type RunEvent } from '../../src/runner/run.ts';
import { fakeHandlers, type Calls } from './fixtures/fake-handlers.ts';
import { stable } from './fixtures/normalize.ts';
import { makeProject, modelsJson } from './fixtures/project.ts';

const newCalls = (): Calls => ({ quantize: 0, base: 0, evaluate: 0 });
const small = () => makeProject(modelsJson({ schemes: ['BF16', 'W4A16', 'W8A16'], methods: ['rtn', 'autoround'], recipes: ['default'] }));
const planOf = (root: string) => planRun({ root, toolVersion: '0.0.0-test' });

test('a run executes every job once, shares the base job, writes ledger, run.json and latest', async () => {
  const root = small();
  const plan = planOf(root);
  const calls = newCalls();
  const events: RunEvent[] = [];
  const s = await runPlan(plan, fakeHandlers({ delayMs: 1, calls }), { runId: 'r1', log: () => {}, onEvent: (e) => events.push(e) });
  // 2 quantized schemes x (rtn + autoround/default) = 4 quantize; 1 kld base; (1 + 4) x 2 suites = 10 evals.
  assert.deepEqual(calls, { quantize: 4, base: 1, evaluate: 10 });
  assert.deepEqual([s.ran, s.cached, s.failed.length, s.skipped, s.appended], [15, 0, 0, 0, 20]);
  const runDir = join(root, '.bench', 'runs', 'r1');
  const recs = readLedger(runDir);
  assert.equal(recs.length, 20, '10 eval jobs x 2 metrics');
  // Records are in plan order, two per eval job, stamped with the job's identity.
  const evals = plan.jobs.filter((j): j is EvalJob => j.kind === 'eval');
  assert.deepEqual(recs.map((r) => r.jobId), evals.flatMap((e) => [e.id, e.id]));
  const w4 = recs.find((r) => r.scheme === 'W4A16' && r.method === 'rtn' && r.suite === 'kld')!;
  assert.equal(w4.bitsPerWeight, 4.5 + 0.001, 'the quantizer\'s exact bpw wins over the nominal one');
  assert.equal(w4.engine, 'onnx');
  assert.equal(w4.run, 'r1');
  assert.ok(w4.timings.quantSeconds! > 0 && w4.timings.evalSeconds > 0 && w4.timings.peakMemoryMB! > 0);
  const prov = w4.provenance as any;
  assert.equal(prov.versions['lowbit-bench'], '0.0.0-test');
  assert.equal(prov.evaluator.bos, 'always');
  assert.equal(prov.seed, 42);
  assert.ok(prov.hashes.model.files['model.safetensors']);
  assert.equal(prov.hashes.baseJob, plan.jobs.find((j) => j.kind === 'base')!.id);
  assert.deepEqual(prov.quantizer.layers, ['layers.0.mlp.down_proj']);
  const bf = recs.find((r) => r.scheme === 'BF16')!;
  assert.equal(bf.method, 'base');
  assert.equal(bf.bitsPerWeight, 16);
  assert.equal(bf.timings.quantSeconds, null);
  const ar = recs.find((r) => r.method === 'autoround')! as any;
  assert.equal(ar.recipe, 'default');
  assert.equal(ar.provenance.recipeValues.nsamples, 16);
  assert.ok(ar.provenance.hashes.calibration.file, 'calibration hash travels with the record');
  const run = JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8'));
  assert.equal(run.runId, 'r1');
  assert.ok(run.host.cores > 0 && run.host.cpu && run.versions.node && run.starts.length === 1 && run.end);
  assert.equal(run.summary.ran, 15);
  assert.equal(readFileSync(join(root, '.bench', 'runs', 'latest'), 'utf8').trim(), 'r1');
  assert.ok(!existsSync(join(runDir, 'run.lock')), 'lock released');
  // Progress: every job ends once, with i of n.
  const ends = events.filter((e) => e.type === 'job-end');
  assert.equal(ends.length, 15);
  assert.ok(ends.every((e) => e.type === 'job-end' && e.total === 15));
  assert.equal((ends.at(-1) as any).done, 15);
  assert.ok(events.some((e) => e.type === 'job-end' && e.etaSeconds !== null && e.etaSeconds > 0));
});

test('a second run with nothing changed does no work and records the same results', async () => {
  const root = small();
  const plan = planOf(root);
  await runPlan(plan, fakeHandlers({ delayMs: 0, calls: newCalls() }), { runId: 'r1', log: () => {} });
  const calls = newCalls();
  const s = await runPlan(planOf(root), fakeHandlers({ delayMs: 0, calls }), { runId: 'r2', log: () => {} });
  assert.deepEqual(calls, { quantize: 0, base: 0, evaluate: 0 });
  assert.deepEqual([s.ran, s.cached], [0, 15]);
  const a = readLedger(join(root, '.bench', 'runs', 'r1'));
  const b = readLedger(join(root, '.bench', 'runs', 'r2'));
  assert.deepEqual(b.map(stable), a.map(stable));
  assert.ok(b.every((r) => r.run === 'r2' && (r.provenance as any).computedInRun === 'r1'));
  assert.ok([...cacheStatus(plan, join(root, '.bench', 'cache')).values()].every((v) => v === 'cached'));
  // A changed recipe value re-runs autoround only.
  const j = modelsJson({ schemes: ['BF16', 'W4A16', 'W8A16'], methods: ['rtn', 'autoround'], recipes: ['default'] }) as any;
  j.recipes.default.iters = 7;
  writeFileSync(join(root, 'models.json'), JSON.stringify(j));
  const c3 = newCalls();
  await runPlan(planOf(root), fakeHandlers({ delayMs: 0, calls: c3 }), { runId: 'r3', log: () => {} });
  assert.deepEqual(c3, { quantize: 2, base: 0, evaluate: 4 });
});

test('resume after a crash between caching and ledger append, with a torn last line', async () => {
  const root = small();
  await runPlan(planOf(root), fakeHandlers({ delayMs: 0, calls: newCalls() }), { runId: 'full', log: () => {} });
  const full = readLedger(join(root, '.bench', 'runs', 'full'));
  // Same results cached, ledger of run 'cut' cut after 7 whole records plus half a line.
  await runPlan(planOf(root), fakeHandlers({ delayMs: 0, calls: newCalls() }), { runId: 'cut', log: () => {} });
  const path = join(root, '.bench', 'runs', 'cut', 'ledger.jsonl');
  const text = readFileSync(path, 'utf8');
  let cut = 0;
  for (let i = 0; i < 7; i++) cut = text.indexOf('\n', cut) + 1;
  truncateSync(path, cut + 40);
  const calls = newCalls();
  const s = await runPlan(planOf(root), fakeHandlers({ delayMs: 0, calls }), { resume: true, log: () => {} });
  assert.equal(s.runId, 'cut', 'resume takes the latest run');
  assert.equal(s.appended, 13);
  assert.equal(calls.evaluate, 0);
  const after = readLedger(path);
  assert.deepEqual(after.map(stable), full.map(stable));
  assert.equal(JSON.parse(readFileSync(join(root, '.bench', 'runs', 'cut', 'run.json'), 'utf8')).starts.length, 2);
});

test('half-written or unmarked checkpoints are never used; stale temp dirs are removed', async () => {
  const root = small();
  const plan = planOf(root);
  const cacheDir = join(root, '.bench', 'cache');
  const q = plan.jobs.find((j) => j.kind === 'quantize')!;
  // A checkpoint dir without its marker (as if renamed by hand) and a temp dir of a dead process.
  mkdirSync(join(cacheDir, 'ckpt', q.id), { recursive: true });
  writeFileSync(join(cacheDir, 'ckpt', q.id, 'model.bin'), 'partial');
  const stale = join(cacheDir, 'ckpt', `.tmp-${q.id.slice(0, 16)}-999999999-abcd1234`);
  mkdirSync(stale);
  const calls = newCalls();
  const s = await runPlan(plan, fakeHandlers({ delayMs: 0, calls }), { runId: 'r', log: () => {} });
  assert.equal(s.failed.length, 0, JSON.stringify(s.failed));
  assert.equal(calls.quantize, 4, 'the unmarked checkpoint was redone');
  assert.ok(!existsSync(stale));
  // A complete checkpoint whose file was later truncated is not used either.
  truncateSync(join(cacheDir, 'ckpt', q.id, 'model.bin'), 100);
  const c2 = newCalls();
  await runPlan(plan, fakeHandlers({ delayMs: 0, calls: c2 }), { runId: 'r2', log: () => {} });
  assert.equal(c2.quantize, 1);
  assert.equal(c2.evaluate, 0, 'results keyed by identity stay valid');
  assert.deepEqual(readdirSync(join(cacheDir, 'ckpt')).filter((n) => n.startsWith('.tmp')), []);
});

test('a failing job skips its dependents and nothing else; bad metrics fail the job', async () => {
  const root = small();
  const calls = newCalls();
  const events: RunEvent[] = [];
  const s = await runPlan(planOf(root), fakeHandlers({ delayMs: 0, calls, failOn: 'W8A16 autoround' }), { runId: 'f', log: () => {}, onEvent: (e) => events.push(e) });
  assert.equal(s.failed.length, 1);
  assert.match(s.failed[0].error, /planned failure/);
  assert.equal(s.skipped, 2, 'its two evals');
  assert.equal(calls.evaluate, 8);
  assert.equal(readLedger(join(root, '.bench', 'runs', 'f')).length, 16);
  const h = fakeHandlers({ delayMs: 0, calls: newCalls() });
  const bad = { ...h, evaluate: async () => [{ task: 't', metric: 'm', value: NaN, stderr: null, n: 1, higherIsBetter: true }] };
  const s2 = await runPlan(planOf(small()), bad, { runId: 'nan', log: () => {} });
  assert.equal(s2.failed.length, 10);
  assert.match(s2.failed[0].error, /value NaN is not a finite number/);
});

test('--jobs 2 gives the same ledger, in the same order, as --jobs 1', async () => {
  const r1 = small();
  const r2 = small();
  await runPlan(planOf(r1), fakeHandlers({ delayMs: 2, calls: newCalls() }), { runId: 'a', jobs: 1, log: () => {} });
  let maxRunning = 0;
  let running = 0;
  await runPlan(planOf(r2), fakeHandlers({ delayMs: 2, calls: newCalls() }), {
    runId: 'a', jobs: 2, log: () => {},
    onEvent: (e) => {
      if (e.type === 'job-start') maxRunning = Math.max(maxRunning, ++running);
      if ((e.type === 'job-end' && !e.cached) || e.type === 'job-failed') running--;
    },
  });
  assert.equal(maxRunning, 2);
  // Model file hashes are equal across the two projects (same bytes), so ids and records match.
  assert.deepEqual(readLedger(join(r2, '.bench', 'runs', 'a')).map(stable), readLedger(join(r1, '.bench', 'runs', 'a')).map(stable));
});

test('a run in use by a live process is refused; a bad run id is refused', async () => {
  const root = small();
  const runDir = join(root, '.bench', 'runs', 'busy');
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, 'run.lock'), `${process.ppid}\n`);
  await assert.rejects(runPlan(planOf(root), fakeHandlers({ delayMs: 0, calls: newCalls() }), { runId: 'busy', log: () => {} }), (e: Error) => e instanceof UserError && /in use by process/.test(e.message));
  await assert.rejects(runPlan(planOf(root), fakeHandlers({ delayMs: 0, calls: newCalls() }), { runId: '../x', log: () => {} }), UserError);
});
