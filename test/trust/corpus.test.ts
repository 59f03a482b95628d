/**
 * The bad-input corpus of the runner-side commands (run, quantize, eval), through the
 * real CLI: each case is what a careless or hostile user typed, the one-line error it
 * must get, and its exit code. `was` says how it failed before: a stack trace, a wrong
 * success (exit 0 with a wrong or NaN number), a hang, or data destroyed.
 * Where a case names an existing path, every byte under it is fingerprinted before and
 * after: a refusal changes nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { OUTPUT_MARKER } from '../../src/cli/outputs.ts';
import { assertOneLineError, bench, fingerprint, MODEL, modelCopy, tmp } from './helpers.ts';

interface Case {
  name: string;
  was: 'stack trace' | 'wrong success' | 'hang' | 'data destroyed' | 'late failure';
  /** Build the arguments in a fresh temp dir; `watch` lists paths whose bytes must not change. */
  args: (dir: string) => { args: string[]; watch?: string[] };
  code: number;
  error: RegExp;
  /** Longest acceptable wall time (s); the machine is shared, so generous. */
  within?: number;
}

const TINY = ['--models', 'stories260k', '--schemes', 'W4A16', '--methods', 'rtn', '--suites', 'tinystories-ppl', '--no-report'];
const Q = (out: string, ...more: string[]) => ['quantize', '--model', 'stories260k', '--scheme', 'W4A16', '--out', out, ...more];

/** Set element 0 of a tensor of a safetensors file (F32) to `value`, in place. */
function poke(file: string, tensor: string, value: number): void {
  const b = readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
  b.writeFloatLE(value, 8 + n + header[tensor].data_offsets[0]);
  writeFileSync(file, b);
}

const CASES: Case[] = [
  { name: 'run --shard with n beyond any integer', was: 'stack trace', args: () => ({ args: ['run', '--dry-run', '--shard', '1/99999999999999999999'] }), code: 2, error: /--shard wants i\/n with integers 1 <= i <= n .*got '1\/99999999999999999999'/ },
  { name: 'run --shard 1/50000000 on a 2-job plan', was: 'hang', args: () => ({ args: ['run', '--dry-run', ...TINY, '--shard', '1/50000000'] }), code: 2, error: /--shard 1\/50000000: the plan has 2 jobs, so n can be at most 2/, within: 60 },
  { name: 'run --shard 0/2', was: 'stack trace', args: () => ({ args: ['run', '--dry-run', '--shard', '0/2'] }), code: 2, error: /--shard wants i\/n/ },
  { name: 'run --shard 3/2', was: 'stack trace', args: () => ({ args: ['run', '--dry-run', '--shard', '3/2'] }), code: 2, error: /--shard wants i\/n/ },
  { name: 'run --resume --dry-run with nothing to resume', was: 'wrong success', args: (d) => ({ args: ['run', '--resume', '--dry-run', '--bench-dir', join(d, 'none')] }), code: 2, error: /nothing to resume: .*runs\/latest does not exist; run without --resume/ },
  { name: 'run --bench-dir under a regular file', was: 'late failure', args: (d) => (writeFileSync(join(d, 'f'), 'x'), { args: ['run', ...TINY, '--bench-dir', join(d, 'f', 'bench')], watch: [join(d, 'f')] }), code: 2, error: /--bench-dir .*f\/bench: .*\/f is a file, so the folder cannot be created there/ },
  { name: 'quantize --ignore with an invalid regex', was: 'stack trace', args: (d) => ({ args: [...Q(join(d, 'out')), '--ignore', 're:('] }), code: 2, error: /--ignore 're:\(': not a valid regular expression/ },
  { name: 'quantize --out under a regular file (unwritable)', was: 'late failure', args: (d) => (writeFileSync(join(d, 'f'), 'x'), { args: Q(join(d, 'f', 'out')), watch: [join(d, 'f')] }), code: 2, error: /--out .*f\/out: .*\/f is a file, not a folder/, within: 60 },
  { name: 'quantize --force onto a regular file', was: 'data destroyed', args: (d) => (writeFileSync(join(d, 'notes.txt'), 'mine\n'), { args: Q(join(d, 'notes.txt'), '--force'), watch: [join(d, 'notes.txt')] }), code: 2, error: /--out .*notes\.txt: exists and is not a directory/ },
  {
    name: 'quantize --force onto a foreign non-empty folder', was: 'data destroyed', code: 2, error: /--out .*photos: exists and was not written by bench \(no \.lowbit-bench-output\)/,
    args: (d) => {
      mkdirSync(join(d, 'photos', 'sub'), { recursive: true });
      writeFileSync(join(d, 'photos', 'a.jpg'), 'jpeg');
      writeFileSync(join(d, 'photos', 'sub', 'b.jpg'), 'jpeg2');
      return { args: Q(join(d, 'photos'), '--force'), watch: [join(d, 'photos')] };
    },
  },
  { name: 'quantize --force onto the source model (a copy given as --model)', was: 'data destroyed', args: (d) => { const m = modelCopy(d); return { args: ['quantize', '--model', m, '--scheme', 'W4A16', '--out', m, '--force'], watch: [m] }; }, code: 2, error: /--out .*model: is or overlaps the source model/ },
  { name: 'quantize --force onto the bundled source model by alias', was: 'data destroyed', args: () => ({ args: Q(MODEL, '--force'), watch: [MODEL] }), code: 2, error: /is or overlaps the source model/ },
  { name: 'quantize --out inside the source model', was: 'data destroyed', args: (d) => { const m = modelCopy(d); return { args: ['quantize', '--model', m, '--scheme', 'W4A16', '--out', join(m, 'q4')], watch: [m] }; }, code: 2, error: /is or overlaps the source model/ },
  { name: 'quantize --out through a symlink into the source model', was: 'data destroyed', args: (d) => { const m = modelCopy(d); symlinkSync(m, join(d, 'link')); return { args: ['quantize', '--model', m, '--scheme', 'W4A16', '--out', join(d, 'link', 'q4')], watch: [m] }; }, code: 2, error: /is or overlaps the source model/ },
  { name: 'eval --base-cache naming a directory', was: 'stack trace', args: (d) => (mkdirSync(join(d, 'dir')), { args: ['eval', '--model', 'stories260k', '--suite', 'kld', '--limit', '1', '--base-cache', join(d, 'dir')], watch: [join(d, 'dir')] }), code: 2, error: /--base-cache .*dir: is a folder, not a regular file/ },
  { name: 'eval --base-cache in a folder that cannot be written', was: 'late failure', args: (d) => (writeFileSync(join(d, 'f'), 'x'), { args: ['eval', '--model', 'stories260k', '--suite', 'kld', '--base', 'stories260k', '--limit', '1', '--base-cache', join(d, 'f', 'base.safetensors')] }), code: 2, error: /--base-cache .*: .*\/f is a file, so the file cannot be created there/, within: 60 },
  { name: 'eval --base-cache with a suite that has no base', was: 'wrong success', args: (d) => ({ args: ['eval', '--model', 'stories260k', '--suite', 'tinystories-ppl', '--limit', '1', '--base-cache', join(d, 'b.safetensors')] }), code: 2, error: /--base-cache applies to kld suites only/ },
  {
    name: 'eval of a checkpoint with a NaN weight', was: 'wrong success', code: 2, error: /NaN|non-finite/,
    args: (d) => { const m = modelCopy(d); poke(join(m, 'model.safetensors'), 'model.layers.0.input_layernorm.weight', NaN); return { args: ['eval', '--model', m, '--suite', 'tinystories-ppl', '--limit', '2', '--threads', '1'] }; },
  },
  {
    name: 'eval of a checkpoint with an infinite weight, multiple choice', was: 'wrong success', code: 2, error: /NaN|non-finite|infinite|has [+-]Inf at/i,
    args: (d) => { const m = modelCopy(d); poke(join(m, 'model.safetensors'), 'model.layers.1.post_attention_layernorm.weight', Infinity); return { args: ['eval', '--model', m, '--suite', 'tinystories-cloze', '--limit', '2', '--threads', '1'] }; },
  },
  {
    name: 'eval with a negative rms_norm_eps, multiple choice (scored acc 0 before)', was: 'wrong success', code: 2, error: /NaN|non-finite|rms_norm_eps/,
    args: (d) => {
      const m = modelCopy(d);
      const cfg = JSON.parse(readFileSync(join(m, 'config.json'), 'utf8'));
      writeFileSync(join(m, 'config.json'), JSON.stringify({ ...cfg, rms_norm_eps: -1 }));
      return { args: ['eval', '--model', m, '--suite', 'tinystories-cloze', '--limit', '2', '--threads', '1'] };
    },
  },
];

for (const c of CASES) {
  test(`corpus: ${c.name} (was: ${c.was}) -> exit ${c.code}`, { timeout: 300_000 }, () => {
    const dir = tmp();
    const { args, watch = [] } = c.args(dir);
    const before = watch.map(fingerprint);
    const r = bench(args);
    assertOneLineError(r, c.code, c.error, c.name);
    assert.doesNotMatch(r.stdout, /NaN|Infinity/, 'no non-finite number printed');
    assert.deepEqual(watch.map(fingerprint), before, 'no byte of what the user named changed');
    if (c.within) assert.ok(r.seconds < c.within, `${c.name}: took ${r.seconds.toFixed(1)} s`);
    // Nothing staged is left beside a refused output.
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.stage-') || n.includes('.write-probe-')), []);
  });
}

test('--dry-run creates no folders', () => {
  const dir = tmp();
  const r = bench(['run', '--dry-run', ...TINY, '--bench-dir', join(dir, 'bench')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /cache: 0 of 2 jobs already done/);
  assert.deepEqual(readdirSync(dir), []);
});

test('quantize --force replaces its own earlier output (marked) and gives the same checkpoint', { timeout: 300_000 }, () => {
  const dir = tmp();
  const out = join(dir, 'q');
  const first = bench(Q(out, '--json'));
  assert.equal(first.status, 0, first.stderr);
  assert.equal(JSON.parse(first.stdout).out, out);
  assert.ok(existsSync(join(out, OUTPUT_MARKER)) && existsSync(join(out, 'model.safetensors')));
  const a = fingerprint(out);
  // Without --force an existing output is refused; with it, replaced.
  assertOneLineError(bench(Q(out)), 2, /already exists; choose another --out or pass --force/, 'no --force');
  writeFileSync(join(out, 'stale.txt'), 'from before');
  const second = bench(Q(out, '--force'));
  assert.equal(second.status, 0, second.stderr);
  assert.deepEqual(fingerprint(out), a, 'RTN is deterministic: the replacement equals the first output, and nothing stale is left');
  assert.deepEqual(readdirSync(dir), ['q']);
  // An empty folder is taken without --force: nothing in it to lose.
  mkdirSync(join(dir, 'empty'));
  assert.equal(bench(Q(join(dir, 'empty'))).status, 0);
  assert.ok(existsSync(join(dir, 'empty', OUTPUT_MARKER)));
});
