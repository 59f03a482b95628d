/**
 * `bench run` killed with SIGKILL at random instants and restarted gives the same ledger,
 * record for record, as an uninterrupted run: nothing lost, nothing duplicated, no
 * half-written checkpoint used.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLedger } from '../../src/results/ledger.ts';
import type { ResultRecord } from '../../src/results/record.ts';
import { uniformSource } from '../../src/stats/index.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BENCH = join(ROOT, 'bin', 'bench.js');
const MATRIX = ['run', '--models', 'stories260k', '--schemes', 'BF16,W4A16,NVFP4A16', '--methods', 'rtn', '--suites', 'tinystories-ppl,tinystories-lastword', '--limit', '16', '--threads', '1', '--no-report'];
const tmp = mkdtempSync(join(tmpdir(), 'kill-'));

const essence = (rs: ResultRecord[]) =>
  rs.map((r) => JSON.stringify([r.jobId, r.task, r.metric, r.value, r.stderr, r.n, r.items])).sort();

function runToEnd(benchDir: string, runId: string): void {
  const r = spawnSync(process.execPath, [BENCH, ...MATRIX, '--bench-dir', benchDir, '--run-id', runId], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
}

function runAndKill(benchDir: string, runId: string, afterMs: number): Promise<number | null> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BENCH, ...MATRIX, '--bench-dir', benchDir, '--run-id', runId], { cwd: ROOT, stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), afterMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      done(code);
    });
  });
}

test('SIGKILL at random points, restart: the ledger equals an uninterrupted run', { timeout: 900_000 }, async () => {
  const clean = join(tmp, 'clean');
  const t0 = Date.now();
  runToEnd(clean, 'r');
  const whole = readLedger(join(clean, 'runs', 'r'));
  const duration = Date.now() - t0;
  assert.ok(whole.length > 0);

  const killed = join(tmp, 'killed');
  const rand = uniformSource(7);
  let kills = 0;
  for (let i = 0; i < 4; i++) {
    const code = await runAndKill(killed, 'r', Math.floor(600 + rand() * duration * 0.8));
    if (code === null) kills++; // killed by the signal (not finished first)
  }
  assert.ok(kills >= 2, `only ${kills} of the runs were actually killed`);
  runToEnd(killed, 'r');
  const resumed = readLedger(join(killed, 'runs', 'r'));
  assert.equal(resumed.length, whole.length, 'records lost or duplicated');
  assert.deepEqual(essence(resumed), essence(whole));
  // A further run has nothing to do.
  const again = spawnSync(process.execPath, [BENCH, ...MATRIX, '--bench-dir', killed, '--run-id', 'r2'], { cwd: ROOT, encoding: 'utf8' });
  assert.match(again.stdout, /0 jobs run, \d+ cached/);
});
