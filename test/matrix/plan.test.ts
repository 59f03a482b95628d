import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { UserError } from '../../src/errors.ts';
import { canonicalJson, identityHash } from '../../src/matrix/identity.ts';
import { formatPlan, nominalBitsPerWeight, planRun, type EvalJob, type Job, type QuantizeJob } from '../../src/matrix/plan.ts';
import { getScheme, withOverrides } from '../../src/quant/schemes.ts';
import { makeProject, modelsJson } from '../runner/fixtures/project.ts';

const plan = (root: string, o: Parameters<typeof planRun>[0] = {}) => planRun({ root, toolVersion: '9.9.9', ...o });
const ids = (jobs: Job[]) => new Map(jobs.map((j) => [j.label + ' ' + j.kind, j.id]));

test('canonical JSON sorts keys at every level; the identity is its sha256', () => {
  const v = { b: 1, a: [{ d: 2, c: null }, 'x'], e: undefined, f: { z: true, y: 0.5 } };
  const expected = '{"a":[{"c":null,"d":2},"x"],"b":1,"f":{"y":0.5,"z":true}}';
  assert.equal(canonicalJson(v), expected);
  assert.equal(identityHash(v), createHash('sha256').update(expected).digest('hex'));
  assert.equal(identityHash({ f: { y: 0.5, z: true }, b: 1, a: [{ c: null, d: 2 }, 'x'] }), identityHash(v));
  assert.notEqual(identityHash({ a: [2, 1] }), identityHash({ a: [1, 2] }), 'array order matters');
});

test('expansion: counts, kinds, dependency order, shared base job', () => {
  const p = plan(makeProject());
  // schemes BF16, W4A16, MXFP4A16; methods rtn, autoround; recipes default, light; suites ppl, kld.
  // quantize: 2 quantized schemes x (rtn + autoround x 2 recipes) = 6; none for BF16.
  // base: one per (model, kld suite) = 1. eval: (1 BF16 + 6 checkpoints) x 2 suites = 14.
  const count = (k: string) => p.jobs.filter((j) => j.kind === k).length;
  assert.deepEqual([count('quantize'), count('base'), count('eval')], [6, 1, 14]);
  assert.equal(new Set(p.jobs.map((j) => j.id)).size, p.jobs.length, 'distinct ids');
  const pos = new Map(p.jobs.map((j, i) => [j.id, i]));
  for (const j of p.jobs) for (const d of j.deps) assert.ok(pos.get(d)! < pos.get(j.id)!, `${j.label}: dep listed first`);
  const base = p.jobs.find((j) => j.kind === 'base')!;
  const evals = p.jobs.filter((j): j is EvalJob => j.kind === 'eval');
  assert.equal(evals.filter((e) => e.suite.name === 'kld').every((e) => e.baseJob === base.id && e.deps.includes(base.id)), true);
  assert.equal(evals.filter((e) => e.suite.name === 'ppl').every((e) => e.baseJob === null), true);
  const bf16 = evals.filter((e) => e.scheme.name === 'BF16');
  assert.deepEqual(bf16.map((e) => [e.method, e.quantizeJob]), [['base', null], ['base', null]]);
  const rtn = p.jobs.filter((j): j is QuantizeJob => j.kind === 'quantize' && j.method === 'rtn');
  assert.deepEqual(rtn.map((j) => [j.scheme.name, j.recipe, j.recipeValues]), [['W4A16', null, null], ['MXFP4A16', null, null]]);
});

test('per-model overrides: group size for integer schemes only, recipe values merged and capped', () => {
  const p = plan(makeProject());
  const q = p.jobs.filter((j): j is QuantizeJob => j.kind === 'quantize');
  const w4 = q.find((j) => j.scheme.name === 'W4A16')!;
  assert.equal(w4.scheme.weights.groupSize, 32);
  assert.equal(q.find((j) => j.scheme.name === 'MXFP4A16')!.scheme.weights.groupSize, 32, 'MX block size is fixed at 32');
  const ar = q.find((j) => j.method === 'autoround' && j.recipe === 'light')!;
  // light recipe: iters 50, lr 0.005; model override nsamples 16, seqlen 1024 capped at seqlenCap 512.
  assert.deepEqual(
    { iters: ar.recipeValues!.iters, lr: ar.recipeValues!.lr, nsamples: ar.recipeValues!.nsamples, seqlen: ar.recipeValues!.seqlen },
    { iters: 50, lr: 0.005, nsamples: 16, seqlen: 512 },
  );
  const nv = plan(makeProject(), { schemes: ['NVFP4A16'], methods: ['rtn'] }).jobs.find((j) => j.kind === 'quantize') as QuantizeJob;
  assert.equal(nv.scheme.weights.groupSize, 16, 'NVFP4 blocks stay 16 despite groupSize 32');
});

test('nominal bits per weight (scales included)', () => {
  assert.equal(nominalBitsPerWeight(getScheme('W4A16')), 4 + 16 / 128);
  assert.equal(nominalBitsPerWeight(withOverrides(getScheme('W2A16'), { groupSize: 32 })), 2.5);
  assert.equal(nominalBitsPerWeight(withOverrides(getScheme('W4A16'), { groupSize: 32, symmetric: false })), 4 + 20 / 32);
  assert.equal(nominalBitsPerWeight(getScheme('MXFP4A16')), 4.25);
  assert.equal(nominalBitsPerWeight(getScheme('NVFP4A16')), 4.5);
  assert.equal(nominalBitsPerWeight(getScheme('BF16')), 16);
});

test('identity: a changed recipe value changes autoround ids only', () => {
  const j = modelsJson() as any;
  const before = ids(plan(makeProject(j)).jobs);
  j.recipes.default.iters = 201;
  const after = ids(plan(makeProject(j)).jobs);
  assert.equal(before.size, after.size);
  for (const [k, id] of before) {
    const changed = after.get(k) !== id;
    // Only autoround/default quantize jobs and their evals depend on the default recipe.
    assert.equal(changed, k.includes('autoround/default'), k);
  }
});

test('identity: a reordered, reformatted models.json changes nothing', () => {
  const j = modelsJson() as any;
  const reordered = {
    matrix: Object.fromEntries(Object.entries(j.matrix).reverse()),
    recipes: Object.fromEntries(Object.entries(j.recipes).reverse().map(([k, v]) => [k, Object.fromEntries(Object.entries(v as object).reverse())])),
    models: { big: j.models.big, tiny: Object.fromEntries(Object.entries(j.models.tiny).reverse()) },
    $schema: j.$schema,
  };
  const root = makeProject(j);
  const a = plan(root).jobs.map((x) => x.id);
  writeFileSync(join(root, 'models.json'), JSON.stringify(reordered, null, 7));
  assert.deepEqual(plan(root).jobs.map((x) => x.id), a);
});

test('identity: a changed suite data file changes that suite\'s jobs only', () => {
  const root = makeProject(modelsJson({ suites: ['ppl', 'kld', 'cloze'] }));
  const before = plan(root).jobs;
  writeFileSync(join(root, 'suites', 'data', 'other.txt'), 'The dog ran home!\n'); // read by cloze only
  const after = plan(root).jobs;
  before.forEach((b, i) => assert.equal(after[i].id !== b.id, b.kind === 'eval' && (b as EvalJob).suite.name === 'cloze', b.label));
  writeFileSync(join(root, 'suites', 'data', 'stories.txt'), 'Once upon a time there was a dog.\n'); // ppl and kld
  const third = plan(root).jobs;
  after.forEach((b, i) => assert.equal(third[i].id !== b.id, b.kind === 'base' || (b.kind === 'eval' && (b as EvalJob).suite.name !== 'cloze'), b.label));
  writeFileSync(join(root, 'suites', 'cloze.json'), JSON.stringify({ name: 'cloze', task: 'multiple_choice', data: 'data/other.txt', shots: 1 }));
  const fourth = plan(root).jobs;
  third.forEach((b, i) => assert.equal(fourth[i].id !== b.id, b.kind === 'eval' && (b as EvalJob).suite.name === 'cloze', b.label));
});

test('identity: model files, calibration data, tool version and seed', () => {
  const root = makeProject();
  const a = plan(root).jobs;
  writeFileSync(join(root, 'models', 'tiny', 'model.safetensors'), Buffer.from([1, 2, 3, 4, 5, 6, 7, 9]));
  const b = plan(root).jobs;
  a.forEach((x, i) => assert.notEqual(b[i].id, x.id, `${x.label}: model bytes changed`));
  writeFileSync(join(root, 'calib.txt'), 'other calibration text\n');
  const c = plan(root).jobs;
  b.forEach((x, i) => assert.equal(c[i].id !== x.id, x.label.includes('autoround'), `${x.label}: calibration changed`));
  const d = plan(root, { toolVersion: '9.9.10' }).jobs;
  c.forEach((x, i) => assert.notEqual(d[i].id, x.id, 'tool version'));
  const e = plan(root, { seed: 7 }).jobs;
  c.forEach((x, i) => assert.equal(e[i].id !== x.id, x.kind !== 'quantize' || (x as QuantizeJob).method !== 'rtn', `${x.label}: seed (RTN ignores it)`));
});

test('hf models: identity is repo + revision; unpinned calibration is warned about', () => {
  const root = makeProject();
  const p = plan(root, { models: ['big'], suites: ['ppl'], schemes: ['W4A16'], methods: ['autoround'], recipes: ['default'] });
  assert.deepEqual(p.models[0].identity, { source: 'hf', repo: 'org/big', revision: '0123456789abcdef0123456789abcdef01234567' });
  assert.equal(p.models[0].engine, 'vllm');
  assert.ok(p.warnings.some((w) => w.includes('org/calib') && w.includes('not pinned')));
  const q = p.jobs.find((j) => j.kind === 'quantize') as QuantizeJob;
  assert.deepEqual(q.recipeValues!.seqlen, 2048, 'no seqlen cap on big');
});

test('unknown names get did-you-mean; missing inputs are one-line UserErrors', () => {
  const root = makeProject();
  const err = (o: Parameters<typeof planRun>[0], re: RegExp) =>
    assert.throws(() => plan(root, o), (e: Error) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'));
  err({ models: ['tinyy'] }, /unknown model 'tinyy'.*did you mean 'tiny'/);
  err({ suites: ['pll'] }, /unknown suite 'pll'.*did you mean 'ppl'/);
  err({ schemes: ['W4A17'] }, /unknown scheme 'W4A17'.*did you mean 'W4A16'/);
  err({ methods: ['autoroun'] }, /unknown method 'autoroun'.*did you mean 'autoround'/);
  err({ recipes: ['ligth'] }, /unknown recipe 'ligth'.*did you mean 'light'/);
  err({ models: ['tiny'], engine: 'vllm' }, /does not run on engine 'vllm'/);
  const noModel = makeProject(modelsJson());
  writeFileSync(join(noModel, 'models.json'), JSON.stringify({ ...modelsJson(), models: { ...(modelsJson() as any).models, tiny: { ...(modelsJson() as any).models.tiny, source: './models/nope' } } }));
  assert.throws(() => plan(noModel), /model 'tiny': \.\/models\/nope does not exist/);
});

test('formatPlan lists every job with its short id and the totals', () => {
  const p = plan(makeProject());
  const text = formatPlan(p, new Map(p.jobs.map((j, i) => [j.id, i < 3 ? 'cached' : 'todo'] as const)));
  assert.match(text, /^plan: 1 model x 3 schemes x 2 methods x 2 recipes x 2 suites -> 6 quantize jobs, 1 base job, 14 eval jobs/);
  assert.match(text, /cache: 3 of 21 jobs already done; 18 to run/);
  for (const j of p.jobs) assert.ok(text.includes(j.id.slice(0, 12)), j.label);
  assert.match(text, /W4A16 rtn g32 sym \(4\.500 bpw\)/);
  assert.match(text, /W4A16 autoround\/light g32 sym iters=50 nsamples=16 seqlen=512/);
});
