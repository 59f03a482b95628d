/**
 * How a plan becomes job arrays, and the batch scripts: no cluster needed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { planRun, type Job } from '../../src/matrix/plan.ts';
import { parseModels } from '../../src/matrix/models.ts';
import { dependencyOf, planArrays } from '../../src/runner/executors/slurm/arrays.ts';
import { settingsFor } from '../../src/runner/executors/slurm/executor.ts';
import { indexRanges, renderScript, shQuote } from '../../src/runner/executors/slurm/script.ts';
import { UserError } from '../../src/errors.ts';
import { makeProject, modelsJson } from '../runner/fixtures/project.ts';

const plan = () => planRun({ root: makeProject(modelsJson({ schemes: ['BF16', 'W4A16', 'W8A16'], methods: ['rtn'], recipes: ['default'], suites: ['ppl', 'kld'] })), toolVersion: '0.0.0-test' });
const labelOf = (jobs: readonly Job[], id: string | null) => (id ? jobs.find((j) => j.id === id)!.label : null);

test('one array per stage; evals aligned with their checkpoints (aftercorr), kld also after its base task', () => {
  const p = plan();
  const all = new Set(p.jobs.map((j) => j.id));
  const arrays = planArrays(p.jobs, all, new Map(), 1);
  const show = arrays.map((a) => ({ name: a.name, jobs: a.jobs.map((id) => labelOf(p.jobs, id)), dep: dependencyOf(a.deps, (n) => `<${n}>`) }));
  assert.deepEqual(show, [
    { name: 'q1-tiny', jobs: ['tiny W4A16 rtn', 'tiny W8A16 rtn'], dep: '' },
    { name: 'b1-tiny', jobs: ['tiny base distribution for kld'], dep: '' },
    { name: 'e1-tiny-ppl', jobs: ['tiny W4A16 rtn on ppl', 'tiny W8A16 rtn on ppl'], dep: 'aftercorr:<q1-tiny>' },
    { name: 'x1-tiny-ppl', jobs: ['tiny BF16 base on ppl'], dep: '' },
    { name: 'e1-tiny-kld', jobs: ['tiny W4A16 rtn on kld', 'tiny W8A16 rtn on kld'], dep: 'aftercorr:<q1-tiny>,afterok:<b1-tiny>_0' },
    { name: 'x1-tiny-kld', jobs: ['tiny BF16 base on kld'], dep: 'afterok:<b1-tiny>_0' },
  ]);
});

test('a rerun submits only what has neither a result nor a live task, and waits on the live tasks', () => {
  const p = plan();
  const byLabel = (l: string) => p.jobs.find((j) => j.label === l)!.id;
  // W4A16's checkpoint and BF16 on ppl are done; W8A16's quantize task 7_1 and the base task 8_0 are still running.
  const done = new Set([byLabel('tiny W4A16 rtn'), byLabel('tiny BF16 base on ppl')]);
  const inFlight = new Map([[byLabel('tiny W8A16 rtn'), '7_1'], [byLabel('tiny base distribution for kld'), '8_0']]);
  const todo = new Set(p.jobs.filter((j) => !done.has(j.id) && !inFlight.has(j.id)).map((j) => j.id));
  const arrays = planArrays(p.jobs, todo, inFlight, 2);
  const show = arrays.map((a) => ({ name: a.name, jobs: a.jobs.map((id) => labelOf(p.jobs, id)), dep: dependencyOf(a.deps, (n) => `<${n}>`) }));
  assert.deepEqual(show, [
    { name: 'x2-tiny-ppl', jobs: ['tiny W4A16 rtn on ppl', 'tiny W8A16 rtn on ppl'], dep: 'afterok:7_1' },
    { name: 'x2-tiny-kld', jobs: ['tiny BF16 base on kld', 'tiny W4A16 rtn on kld', 'tiny W8A16 rtn on kld'], dep: 'afterok:7_1:8_0' },
  ]);
});

test('an aligned index whose eval has its result is left out of the array', () => {
  const p = plan();
  const cachedEval = p.jobs.find((j) => j.label === 'tiny W4A16 rtn on ppl')!.id;
  const todo = new Set(p.jobs.filter((j) => j.id !== cachedEval).map((j) => j.id));
  const e = planArrays(p.jobs, todo, new Map(), 1).find((a) => a.name === 'e1-tiny-ppl')!;
  assert.deepEqual(e.jobs.map((id) => labelOf(p.jobs, id)), [null, 'tiny W8A16 rtn on ppl']);
  const script = renderScript({ jobName: 'j', indices: [1], log: '/l/%A_%a.out', dependency: '', settings: {}, cwd: '/', argv: ['true'], comments: [] });
  assert.match(script, /^#SBATCH --array=1$/m);
  assert.equal(indexRanges([0, 2, 3, 4, 7, 8]), '0,2-4,7-8');
});

test('the command line in a batch script gives the task exactly its arguments, whatever they hold', () => {
  const nasty = ["it's", 'a b', '$(touch /tmp/pwned)', '`id`', '"q"', 'back\\slash', '*', '; rm -rf /', '\n'];
  for (const s of nasty) {
    const r = spawnSync('bash', ['-c', `printf '%s' ${shQuote(s)}`], { encoding: 'utf8' });
    assert.equal(r.stdout, s);
  }
  // The rendered script run by bash: its last line execs the argv with the task index appended.
  const script = renderScript({
    jobName: 'bench-x', indices: [0, 1], log: '/tmp/l-%A_%a.out', dependency: '', settings: { maxParallel: 2 }, cwd: '/', argv: ['printf', '%s|', ...nasty], comments: ['multi\nline'],
  });
  assert.match(script, /^#SBATCH --array=0-1%2$/m);
  assert.match(script, /^# multi line$/m);
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', env: { ...process.env, SLURM_ARRAY_TASK_ID: '1' } });
  assert.equal(r.stdout, [...nasty, '1'].map((s) => `${s}|`).join(''));
});

test('values that would need quoting in an #SBATCH line are refused with a one-line fix', () => {
  const base = { jobName: 'j', indices: [0], dependency: '', cwd: '/', argv: ['true'], comments: [] };
  assert.throws(() => renderScript({ ...base, log: '/my dir/%A.out', settings: {} }), (e: unknown) => e instanceof UserError && /log path '\/my dir\/%A.out' has characters/.test(e.message));
  assert.throws(() => renderScript({ ...base, log: '/l', settings: { sbatchArgs: ['--comment=a b'] } }), UserError);
  assert.throws(() => renderScript({ ...base, log: '/l', settings: { partition: 'gpu;x' } }), UserError);
});

test('models.json takes slurm settings per model; the command line wins, sbatch args add up', () => {
  const file = modelsJson();
  (file.models as any).tiny.slurm = { partition: 'gpu', time: '04:00:00', gpusPerTask: 2, sbatchArgs: ['--mem=64G'] };
  const m = parseModels(JSON.stringify(file), 'models.json', '/p').models.get('tiny')!;
  assert.deepEqual(settingsFor({ time: '00:30:00', sbatchArgs: ['--mem=8G'] }, m.slurm), {
    partition: 'gpu', account: undefined, time: '00:30:00', gpusPerTask: 2, maxParallel: undefined, sbatchArgs: ['--mem=64G', '--mem=8G'],
  });
  (file.models as any).tiny.slurm = { time: 'tomorrow' };
  assert.throws(() => parseModels(JSON.stringify(file), 'models.json', '/p'), /models\.json: models\.tiny\.slurm\.time: expected a Slurm time limit/);
  (file.models as any).tiny.slurm = { sbatchArgs: ['--mem 64G'] };
  assert.throws(() => parseModels(JSON.stringify(file), 'models.json', '/p'), /sbatchArgs\.0: expected one sbatch option/);
});

test('bench run refuses Slurm flags without --executor slurm, and bad flag values, with exit 2', () => {
  const bench = join(import.meta.dirname, '..', '..', 'bin', 'bench.js');
  const run = (args: string[]) => spawnSync(process.execPath, [bench, 'run', '--schemes', 'W4A16', '--methods', 'rtn', '--suites', 'tinystories-ppl', '--dry-run', ...args], { encoding: 'utf8', cwd: join(import.meta.dirname, '..', '..') });
  let r = run(['--partition', 'gpu']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^bench: error: --partition works with --executor slurm only/m);
  r = run(['--executor', 'slurm', '--time', '1 day']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--time: expected a Slurm time limit/);
  r = run(['--executor', 'slurm', '--sbatch-arg', '--wrap=x y']);
  assert.equal(r.status, 2);
});
