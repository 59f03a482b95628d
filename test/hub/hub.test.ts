/**
 * Hub resolution against Python's huggingface_hub and transformers, both talking to one Hub on
 * loopback: a snapshot either client downloads is found by the other; bad references, gated
 * repositories and broken downloads give one-line errors with exit 2; a broken download is
 * resumed with a Range request and never used before its hash checks out; the token never
 * appears in any output.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, existsSync, rmSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { startLoopbackHub, type LoopbackHub } from './loopback-hub.ts';
import { requireToolEnv } from '../helpers/toolenv.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const MODEL = join(ROOT, 'models/synth-llama-h32');
const C1 = '0123456789abcdef0123456789abcdef01234567';
const C2 = 'fedcba9876543210fedcba9876543210fedcba98';
const TOKEN = 'hf_loopbackSECRETtoken0123456789';

let hub: LoopbackHub;
let work: string;

function modelFiles(): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const f of readdirSync(MODEL)) out[f] = new Uint8Array(readFileSync(join(MODEL, f)));
  // A file a model is not loaded from: must not be downloaded by `bench fetch`.
  out['original/consolidated.00.pth'] = new Uint8Array(20_000);
  return out;
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'hub-test-'));
  const files = modelFiles();
  hub = await startLoopbackHub([
    { type: 'model', name: 'lowbit-test/synth-llama', commits: { [C1]: files }, refs: { main: C1 } },
    { type: 'model', name: 'lowbit-test/gated', commits: { [C2]: files }, refs: { main: C2 }, token: TOKEN },
  ]);
});

after(async () => {
  await hub.close();
  rmSync(work, { recursive: true, force: true });
});

function bench(args: string[], env: Record<string, string>) {
  return execa(process.execPath, [join(ROOT, 'bin/bench.js'), ...args], {
    reject: false, env: { ...process.env, HF_TOKEN: '', HF_HUB_OFFLINE: '', HF_ENDPOINT: hub.url, ...env }, extendEnv: false,
  });
}

test('a snapshot downloaded by Python huggingface_hub is resolved by bench offline, to the same folder', async () => {
  const py = await requireToolEnv('quant');
  const cache = join(work, 'cache-py');
  const r = await execa(py.python, ['-c', "from huggingface_hub import snapshot_download as s; print(s('lowbit-test/synth-llama', revision='main'))"], {
    env: { ...process.env, HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_TOKEN: '', HF_HUB_DISABLE_XET: '1' },
  });
  const pyDir = r.stdout.trim().split('\n').pop()!;
  const ours = await bench(['fetch', 'hf:lowbit-test/synth-llama@main', '--json'], { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1', HF_ENDPOINT: 'http://127.0.0.1:9' });
  assert.equal(ours.exitCode, 0, ours.stderr);
  const j = JSON.parse(ours.stdout);
  assert.equal(j.commit, C1);
  assert.equal(realpathSync(j.dir), realpathSync(pyDir));
  assert.equal(j.downloaded, 0);
});

test('a snapshot bench downloads loads in transformers with local_files_only, and has only the model files', async () => {
  const py = await requireToolEnv('quant');
  const cache = join(work, 'cache-ours');
  const r = await bench(['fetch', 'hf:lowbit-test/synth-llama', '--json'], { HF_HUB_CACHE: cache });
  assert.equal(r.exitCode, 0, r.stderr);
  const dir = JSON.parse(r.stdout).dir as string;
  const loadable = readdirSync(MODEL).filter((f) => f !== 'PROVENANCE.md').sort();
  assert.deepEqual(readdirSync(dir).sort(), loadable);
  for (const f of loadable) assert.deepEqual(readFileSync(join(dir, f)), readFileSync(join(MODEL, f)), f);
  const load = await execa(py.python, ['-c', [
    'import torch',
    'from transformers import AutoModelForCausalLM',
    "m = AutoModelForCausalLM.from_pretrained('lowbit-test/synth-llama', revision='main', local_files_only=True, dtype=torch.float32)",
    'print(sum(p.numel() for p in m.parameters()), float(m.model.embed_tokens.weight[3, 5]))',
  ].join('\n')], { env: { ...process.env, HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1', HF_ENDPOINT: 'http://127.0.0.1:9' } });
  const [params, w] = load.stdout.trim().split('\n').pop()!.split(' ');
  // 512x128 embeddings + lm_head, 4 layers of (q 128x128, k/v 64x128, o 128x128, 3 MLP 384x128, 2 norms), final norm
  assert.equal(Number(params), 2 * 512 * 128 + 4 * (128 * 128 * 2 + 64 * 128 * 2 + 3 * 384 * 128 + 2 * 128) + 128);
  const st = readFileSync(join(MODEL, 'model.safetensors'));
  const hl = Number(st.readBigUInt64LE(0));
  const header = JSON.parse(st.subarray(8, 8 + hl).toString()) as Record<string, { data_offsets: [number, number] }>;
  const off = 8 + hl + header['model.embed_tokens.weight'].data_offsets[0] + (3 * 128 + 5) * 4;
  assert.equal(Number(w), st.readFloatLE(off));
});

test('bad references give one line and exit 2; the token is never printed', async () => {
  const cache = join(work, 'cache-bad');
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['fetch', 'hf:lowbit-test/synth-llama@no-such-branch'], {}, /no such repository or revision/],
    [['fetch', 'hf:lowbit-test/nothing-here'], {}, /no such repository or revision/],
    [['fetch', 'hf:lowbit-test/gated'], {}, /gated or private: set HF_TOKEN/],
    [['fetch', 'hf:lowbit-test/gated'], { HF_TOKEN: 'hf_wrongTOKENvalue' }, /token in use has no access/],
    [['fetch', 'hf:lowbit-test/synth-llama@main'], { HF_HUB_OFFLINE: '1' }, /not in the HF cache .* HF_HUB_OFFLINE=1/],
    [['fetch', 'hf:../../etc'], {}, /not a Hub reference/],
  ];
  for (const [args, env, re] of cases) {
    const r = await bench(args, { HF_HUB_CACHE: cache, ...env });
    assert.equal(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], re);
    assert.ok(!`${r.stdout}${r.stderr}`.includes('hf_wrongTOKENvalue'));
  }
  const ok = await bench(['fetch', 'hf:lowbit-test/gated', '--json'], { HF_HUB_CACHE: cache, HF_TOKEN: TOKEN });
  assert.equal(ok.exitCode, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).commit, C2);
  assert.ok(!`${ok.stdout}${ok.stderr}`.includes(TOKEN));
  assert.ok(!hub.log.some((l) => l.includes(TOKEN)));
});

test('a download that breaks off is not used, and the next run resumes it with a Range request', async () => {
  const cache = join(work, 'cache-cut');
  hub.truncateOnce.add('lowbit-test/synth-llama/model.safetensors');
  const first = await bench(['fetch', 'hf:lowbit-test/synth-llama'], { HF_HUB_CACHE: cache });
  assert.equal(first.exitCode, 2, first.stderr);
  assert.match(first.stderr.trim().split("\n").pop()!, /^bench: error: hf:lowbit-test\/synth-llama: the download of model\.safetensors (broke off|ended) at \d+ of 3678744 bytes; run the command again to resume it$/);
  const storage = join(cache, 'models--lowbit-test--synth-llama');
  assert.ok(!existsSync(join(storage, 'snapshots', C1, 'model.safetensors')), 'a cut file must not be linked into the snapshot');
  const partial = readdirSync(join(storage, 'blobs')).filter((f) => f.endsWith('.incomplete'));
  assert.equal(partial.length, 1);
  const before = hub.log.length;
  const second = await bench(['fetch', 'hf:lowbit-test/synth-llama', '--json'], { HF_HUB_CACHE: cache });
  assert.equal(second.exitCode, 0, second.stderr);
  assert.ok(hub.log.slice(before).some((l) => /resolve\/.*model\.safetensors range=bytes=\d+-/.test(l)), 'resumed with a Range request');
  assert.deepEqual(readFileSync(join(JSON.parse(second.stdout).dir, 'model.safetensors')), readFileSync(join(MODEL, 'model.safetensors')));
});

test('bench publish pushes the site and the ledgers in one commit; a dry run sends nothing; a file holding the token is refused', async () => {
  const W = 'hf_loopbackWRITEtoken987654321';
  await hub.close();
  hub = await startLoopbackHub([{ type: 'dataset', name: 'lowbit-test/board', commits: {}, refs: {}, token: W, publicRead: true }]);
  const benchDir = join(work, 'pub-bench');
  const run = await bench(['run', '--models', 'stories260k', '--schemes', 'BF16', '--suites', 'tinystories-ppl', '--limit', '3',
    '--bench-dir', benchDir, '--run-id', 'pub-run', '--report-out', join(work, 'pub-site')], {});
  assert.equal(run.exitCode, 0, run.stderr);
  const runDir = join(benchDir, 'runs', 'pub-run');
  const site = join(work, 'pub-site');
  const args = ['publish', '--repo', 'lowbit-test/board', '--site', site, '--runs', runDir, '--json'];

  const dry = await bench([...args, '--dry-run'], { HF_TOKEN: W });
  assert.equal(dry.exitCode, 0, dry.stderr);
  const listed = JSON.parse(dry.stdout) as { files: Array<{ path: string; size: number }> };
  assert.ok(listed.files.some((f) => f.path === 'site/index.html'));
  assert.ok(listed.files.some((f) => f.path === 'runs/pub-run/ledger.jsonl'));
  assert.ok(!hub.log.some((l) => l.startsWith('POST')), 'a dry run sends nothing');

  const noToken = await bench(args, {});
  assert.equal(noToken.exitCode, 2);
  assert.match(noToken.stderr.trim(), /needs a token with write access/);

  const r = await bench(args, { HF_TOKEN: W });
  assert.equal(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { commit: string };
  const repo = (hub as unknown as { log: string[] }).log;
  assert.equal(repo.filter((l) => /^POST \/api\/datasets\/lowbit-test\/board\/commit\//.test(l)).length, 1, 'one commit');
  // What landed is exactly the listed files, byte for byte (read back through our own fetch of the dataset).
  const cache = join(work, 'cache-pub');
  const back = await bench(['fetch', `hf:datasets/lowbit-test/board@${out.commit}`, '--json'], { HF_HUB_CACHE: cache });
  assert.equal(back.exitCode, 0, back.stderr);
  const dir = JSON.parse(back.stdout).dir as string;
  for (const f of listed.files) {
    const local = f.path.startsWith('site/') ? join(site, f.path.slice(5)) : join(runDir, f.path.split('/').pop()!);
    assert.deepEqual(readFileSync(join(dir, f.path)), readFileSync(local), f.path);
  }
  for (const o of [dry, noToken, r, back]) assert.ok(!`${o.stdout}${o.stderr}`.includes(W));

  // A ledger that holds the token is never published.
  const leaky = join(work, 'leaky-run');
  await execa('cp', ['-r', runDir, leaky]);
  const { appendFileSync } = await import('node:fs');
  appendFileSync(join(leaky, 'run.json'), `\n${W}\n`);
  const refused = await bench(['publish', '--repo', 'lowbit-test/board', '--site', site, '--runs', leaky], { HF_TOKEN: W });
  assert.equal(refused.exitCode, 2);
  assert.match(refused.stderr.trim(), /contains the Hub token; refusing to publish it/);
  assert.ok(!`${refused.stdout}${refused.stderr}`.includes(W));
});
