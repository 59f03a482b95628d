/**
 * KILL TEST: real processes running the runner over a small matrix with fake but
 * deterministic handlers that write real files. The process is SIGKILLed at seeded
 * random points and restarted; the final ledger must equal an uninterrupted run's,
 * record for record, no half-written checkpoint may ever be read, and a further run
 * with nothing changed must do no work.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { uniformSource } from '../../src/stats/index.ts';
import { readLedger } from '../../src/results/ledger.ts';
import { stable } from './fixtures/normalize.ts';
import { makeProject, modelsJson } from './fixtures/project.ts';

const SCRIPT = join(fileURLToPath(import.meta.url), '..', 'fixtures', 'run-fake.ts');


interface Outcome {
  killed: boolean;
  lines: any[];
}

/** Run the fake CLI; if `killAfterStarts` is set, SIGKILL it `delayMs` after that many job starts. */
function runChild(args: Record<string, unknown>, killAfterStarts?: number, delayMs = 0): Promise<Outcome> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: any[] = [];
    let buf = '';
    let err = '';
    let starts = 0;
    let killed = false;
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        lines.push(line);
        if (line.type === 'job-start' && killAfterStarts !== undefined && ++starts === killAfterStarts) {
          setTimeout(() => {
            killed = child.kill('SIGKILL');
          }, delayMs);
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, sig) => {
      if (sig === 'SIGKILL') return resolvePromise({ killed: true, lines });
      if (code !== 0) return reject(new Error(`child exited ${code}: ${err}`));
      resolvePromise({ killed, lines });
    });
  });
}

test('SIGKILL at random points, restart: the ledger equals an uninterrupted run, no half-written checkpoint used', async () => {
  const root = makeProject(modelsJson({ schemes: ['BF16', 'W4A16', 'W8A16'], methods: ['rtn', 'autoround'], recipes: ['default'] }));
  const delay = 8; // ms per write step in the fake handlers: a job takes ~35 ms
  const common = { root, runId: 'run-1', jobs: 1, delayMs: delay };

  const ref = await runChild({ ...common, benchDir: join(root, 'ref') });
  const refSummary = ref.lines.at(-1);
  assert.equal(refSummary.type, 'summary');
  assert.equal(refSummary.summary.ran, 15);

  const usesLog = join(root, 'uses.log');
  const benchDir = join(root, 'killed');
  const rand = uniformSource(20240611);
  let kills = 0;
  for (let attempt = 0; attempt < 6; attempt++) {
    const after = 1 + Math.floor(rand() * 3);
    const wait = Math.floor(rand() * delay * 5);
    const o = await runChild({ ...common, benchDir, usesLog }, after, wait);
    if (o.killed) kills++;
    // Every job the killed process finished stays finished: nothing failed.
    assert.ok(!o.lines.some((l) => l.type === 'job-failed'), JSON.stringify(o.lines.find((l) => l.type === 'job-failed')));
  }
  assert.ok(kills >= 4, `the test must actually kill the runner (killed ${kills} times)`);
  const last = await runChild({ ...common, benchDir, usesLog });
  const sum = last.lines.at(-1);
  assert.equal(sum.summary.failed.length, 0);

  const want = readLedger(join(root, 'ref', 'runs', 'run-1'));
  const got = readLedger(join(benchDir, 'runs', 'run-1'));
  assert.equal(got.length, want.length, 'nothing lost, no duplicates');
  assert.deepEqual(got.map(stable), want.map(stable), 'record for record');
  const keys = got.map((r) => `${r.jobId}/${r.task}/${r.metric}`);
  assert.equal(new Set(keys).size, keys.length);

  // The evaluator checks every checkpoint it reads (marker present, bytes intact) and logs it.
  const uses = readFileSync(usesLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(uses.length >= 10 && uses.every((u) => u.ok));
  // No temp dirs left behind, and every checkpoint in the cache has its marker.
  for (const k of ['ckpt', 'base']) {
    const names = readdirSync(join(benchDir, 'cache', k));
    assert.deepEqual(names.filter((n) => n.startsWith('.tmp')), []);
    for (const n of names) assert.ok(existsSync(join(benchDir, 'cache', k, n, 'COMPLETE.json')), `${k}/${n} has its marker`);
  }

  // A second run with nothing changed does no work.
  const again = await runChild({ ...common, benchDir, runId: 'run-2' });
  const s2 = again.lines.at(-1);
  assert.deepEqual(s2.calls, { quantize: 0, base: 0, evaluate: 0 });
  assert.equal(s2.summary.cached, 15);
  assert.deepEqual(readLedger(join(benchDir, 'runs', 'run-2')).map(stable), want.map(stable));
});
