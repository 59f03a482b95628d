/**
 * `bench run --executor slurm` against a real one-node Slurm cluster (scripts/slurm/up.sh
 * starts it when it is not running, and this file stops it again in that case).
 *   - a distributed run of an embedded matrix gives exactly the ledger of the same matrix
 *     run locally, even though its orchestrator is SIGKILLed half-way and the same command is
 *     run again: the new run follows the tasks still in flight, the execution log shows no
 *     job ran twice, and a third run submits nothing;
 *   - a detached run followed by `bench status`: a task that fails is reported with its
 *     Slurm job id, state and log; its dependents never run;
 *   - SIGINT cancels the run's jobs: nothing left in squeue, no process left behind; so does
 *     the first failure with --fail-fast; options sbatch refuses are a one-line error.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readLedger } from '../../src/results/ledger.ts';
import type { ResultRecord } from '../../src/results/record.ts';
import { arrayIds, bench, ensureCluster, processesMentioning, queue, until } from './cluster.ts';

let stopCluster = () => {};
const work = mkdtempSync(join(tmpdir(), 'bench-slurm-'));
before(() => {
  stopCluster = ensureCluster();
});
after(() => {
  stopCluster();
  rmSync(work, { recursive: true, force: true });
});

// Four schemes x {rtn, autoround with the ci recipe} x two cheap suites: 8 quantize + 16 eval jobs.
const MATRIX = ['--schemes', 'W2A16,W4A16,W8A16,MXFP4A16', '--methods', 'rtn,autoround', '--recipe', 'ci', '--suites', 'tinystories-ppl,tinystories-cloze', '--limit', '2', '--no-report'];
/**
 * What a record says, without what differs between two executions of the same job (times,
 * memory, host, run ids; the quantizer's record file holds its timings): the numbers, what
 * they are of, and the bytes of the weights that were scored.
 */
function numbers(r: ResultRecord) {
  const { jobId, model, scheme, method, recipe, suite, engine, bitsPerWeight, task, metric, value, stderr, n } = r;
  const files = (r.provenance.hashes as { checkpointFiles: Record<string, string> | null }).checkpointFiles;
  return { jobId, model, scheme, method, recipe, suite, engine, bitsPerWeight, task, metric, value, stderr, n, weights: files?.['model.safetensors'] ?? null };
}
const byKey = (recs: ResultRecord[]) => new Map(recs.map((r) => [`${r.jobId}/${r.task}/${r.metric}`, numbers(r)]));
const lines = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : []);

test('a Slurm run killed half-way, then the same command again: the local ledger, and no job runs twice', { timeout: 600_000 }, async () => {
  const localDir = join(work, 'local');
  const slurmDir = join(work, 'slurm');
  const execLog = join(work, 'executions.log');
  // The reference runs in this process's machine at the same time: same code, its own cache.
  const local = bench(['run', ...MATRIX, '--bench-dir', localDir, '--run-id', 'ref']);

  // The same command twice (no run id): the second run is a new run that finds the first one's tasks.
  const first = bench(['run', ...MATRIX, '--executor', 'slurm', '--bench-dir', slurmDir], { BENCH_EXECUTION_LOG: execLog });
  // Kill the orchestrator once tasks have started and some are still to come.
  await until(() => lines(execLog).length >= 2, 240_000, 'two tasks to start');
  first.child.kill('SIGKILL');
  const killed = await first.done;
  assert.equal(killed.signal, 'SIGKILL');
  const latest = () => readFileSync(join(slurmDir, 'runs', 'latest'), 'utf8').trim();
  const killedRun = latest();
  const inFlight = queue(arrayIds(join(slurmDir, 'runs', killedRun))).filter((t) => /PENDING|RUNNING|COMPLETING/.test(t.state));
  assert.ok(inFlight.length > 0, 'tasks go on after the orchestrator died');

  const second = await bench(['run', ...MATRIX, '--executor', 'slurm', '--bench-dir', slurmDir], { BENCH_EXECUTION_LOG: execLog }).done;
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /following \d+ task\(s\) submitted earlier/);
  assert.notEqual(latest(), killedRun);
  const runDir = join(slurmDir, 'runs', latest());

  // Every job ran exactly once, across both orchestrators.
  const runs = lines(execLog).map((l) => l.split(' ')[1]);
  assert.equal(runs.length, 24, lines(execLog).join('\n'));
  assert.equal(new Set(runs).size, 24, 'no job ran twice');

  const ref = await local.done;
  assert.equal(ref.code, 0, ref.stderr);
  const want = byKey(readLedger(join(localDir, 'runs', 'ref')));
  const got = byKey(readLedger(runDir));
  assert.equal(new Set([...want.values()].map((r) => r.jobId)).size, 16, 'the reference has all 16 evals');
  assert.ok([...want.values()].every((r) => Number.isFinite(r.value) && (r.weights !== null) === (r.method !== 'base')));
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), 'the same records');
  for (const [k, r] of want) assert.deepEqual(got.get(k), r, k);

  // The same command again submits nothing: every job has its result.
  const third = await bench(['run', ...MATRIX, '--executor', 'slurm', '--bench-dir', slurmDir, '--run-id', 'again']).done;
  assert.equal(third.code, 0, third.stderr);
  assert.match(third.stderr, /24 jobs, 24 cached/);
  assert.doesNotMatch(third.stderr, /submitted/);
  assert.equal(lines(execLog).length, 24);
});

test('a detached run followed by bench status: the failed task is reported with its job id, state and log; its dependents do not run', { timeout: 300_000 }, async () => {
  const dir = join(work, 'fail');
  const execLog = join(work, 'fail-executions.log');
  // RTN refuses W8A8-FP8-STATIC (it collects no activation ranges): that quantize task fails.
  const sub = await bench(
    ['run', '--schemes', 'W8A8-FP8-STATIC,W4A16', '--methods', 'rtn', '--suites', 'tinystories-ppl', '--limit', '2', '--no-report', '--executor', 'slurm', '--bench-dir', dir, '--run-id', 'f1', '--detach'],
    { BENCH_EXECUTION_LOG: execLog },
  ).done;
  assert.equal(sub.code, 0, sub.stderr);
  assert.match(sub.stdout, /run f1: submitted; follow it with: bench status f1 --bench-dir /);
  const r = await bench(['status', 'f1', '--bench-dir', dir]).done;
  assert.equal(r.code, 1, r.stderr);
  const m = /FAILED stories260k W8A8-FP8-STATIC rtn: Slurm job (\d+_\d+) ended FAILED \(exit code 1:0\); log (\S+\.out)/.exec(r.stderr);
  assert.ok(m, r.stderr);
  const [, jobId, log] = m;
  assert.match(readFileSync(log, 'utf8'), /RTN does not collect/);
  assert.match(r.stderr, /skipped stories260k W8A8-FP8-STATIC rtn on tinystories-ppl: stories260k W8A8-FP8-STATIC rtn failed/);
  assert.match(r.stdout, /run f1: \d jobs run, \d cached, 1 failed, 1 skipped/);
  // run.json keeps where it failed.
  const failures = JSON.parse(readFileSync(join(dir, 'runs', 'f1', 'run.json'), 'utf8')).summary.failures;
  assert.deepEqual(failures.map((x: { where: unknown }) => x.where), [{ jobId, state: 'FAILED', exitCode: '1:0', log }]);
  // The W4A16 checkpoint and its eval ran, each once; the failed scheme's eval never started.
  const ran = lines(execLog);
  assert.equal(ran.length, 3, ran.join('\n'));
  assert.equal(ran.filter((l) => l.startsWith('eval ')).length, 1);
  assert.deepEqual(readLedger(join(dir, 'runs', 'f1')).map((x) => x.scheme).filter((x, k, a) => a.indexOf(x) === k), ['W4A16']);
  // Its task was cancelled (by Slurm's kill_invalid_depend, or by bench), never run.
  const e = JSON.parse(readFileSync(join(dir, 'runs', 'f1', 'slurm', 'state.json'), 'utf8')).arrays.find((a: { name: string }) => a.name.startsWith('e1-'));
  const dependent = queue([e.arrayJobId]).find((t) => t.id === `${e.arrayJobId}_${jobId.split('_')[1]}`);
  assert.equal(dependent?.state, 'CANCELLED');
});

test('SIGINT cancels the run: no job left in squeue, no process left behind', { timeout: 300_000 }, async () => {
  const dir = join(work, 'cancel');
  const execLog = join(work, 'cancel-executions.log');
  const run = bench(['run', '--schemes', 'W3A16', '--methods', 'autoround', '--recipe', 'ci', '--suites', 'tinystories-ppl', '--limit', '2', '--no-report', '--executor', 'slurm', '--bench-dir', dir, '--run-id', 'c1'], { BENCH_EXECUTION_LOG: execLog });
  const runDir = join(dir, 'runs', 'c1');
  // Interrupt while the quantize task is running (its eval waits on it).
  await until(() => lines(execLog).length >= 1, 240_000, 'the quantize task to start');
  run.child.kill('SIGINT');
  const r = await run.done;
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /cancelling job\(s\)/);
  const ids = arrayIds(runDir);
  assert.equal(ids.length, 2);
  const left = queue(ids).filter((t) => !/CANCELLED|COMPLETED|FAILED/.test(t.state));
  assert.deepEqual(left, [], 'nothing queued or running');
  assert.ok(queue(ids).some((t) => t.state === 'CANCELLED'));
  // The batch shell exec'd bench with the run's task file in its argv: slurmd must have killed it.
  await until(() => processesMentioning(runDir).length === 0, 15_000, `no process left behind (still: ${processesMentioning(runDir).join(', ')})`);
});

test('options sbatch refuses: one line naming the problem, exit 2, nothing left queued', { timeout: 120_000 }, async () => {
  const dir = join(work, 'refused');
  const r = await bench(['run', '--schemes', 'W4A16', '--methods', 'rtn', '--suites', 'tinystories-ppl', '--limit', '2', '--no-report', '--executor', 'slurm', '--partition', 'nosuchpartition', '--bench-dir', dir, '--run-id', 'p1']).done;
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^bench: error: sbatch \S+q1-stories260k\.sbatch failed: .*[Pp]artition/m);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  const st = JSON.parse(readFileSync(join(dir, 'runs', 'p1', 'slurm', 'state.json'), 'utf8'));
  assert.deepEqual(st.arrays.map((a: { arrayJobId: string | null }) => a.arrayJobId), [null]);
});

test('--fail-fast: the first failed task cancels the rest of the run', { timeout: 300_000 }, async () => {
  const dir = join(work, 'failfast');
  // The RTN task of W8A8-FP8-STATIC fails within seconds; the AutoRound task beside it is still running then.
  const r = await bench(['run', '--schemes', 'W8A8-FP8-STATIC,W3A16', '--methods', 'rtn,autoround', '--recipe', 'ci', '--suites', 'tinystories-ppl', '--limit', '2', '--no-report', '--json', '--executor', 'slurm', '--fail-fast', '--bench-dir', dir, '--run-id', 'ff']).done;
  assert.equal(r.code, 1, r.stderr);
  const { summary } = JSON.parse(r.stdout);
  assert.equal(summary.failed[0].label, 'stories260k W8A8-FP8-STATIC rtn');
  assert.equal(summary.failed[0].where.state, 'FAILED');
  assert.ok(summary.failed.length >= 2, 'the AutoRound task running beside it was cancelled');
  assert.ok(summary.failed.slice(1).every((f: { error: string }) => /cancelled \(--fail-fast after a failure\)/.test(f.error)), JSON.stringify(summary.failed));
  assert.ok(summary.ran < 4, 'not everything ran');
  assert.deepEqual(queue(arrayIds(join(dir, 'runs', 'ff'))).filter((t) => !/CANCELLED|COMPLETED|FAILED/.test(t.state)), []);
});
