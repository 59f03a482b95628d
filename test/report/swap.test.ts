/**
 * The site swap under kills. Each rename is atomic, so a SIGKILL leaves exactly the state
 * after some prefix of the swap's steps: every prefix is replayed here, then the next
 * report's recovery must leave a whole site (old or new, the new one once the old was moved
 * aside) and no leftovers. Then real SIGKILLs of `bench report` at spread-out moments.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recoverSite as recover, swapNames, swapSteps } from '../../src/report/swap.ts';

const MARK = '.lowbit-bench-report';
const recoverSite = (out: string) => recover(out, MARK);
import { synthLedger } from '../../scripts/synth-ledger.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'report-swap-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A pid that is certainly not running: a child that has exited. */
const DEAD = spawnSync(process.execPath, ['-e', '0']).pid!;

function site(dir: string, content: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'index.html'), content);
  writeFileSync(join(dir, MARK), 'marker\n');
}
const leftovers = (parent: string) => readdirSync(parent).filter((e) => /^\.site\.(tmp|old)-\d+$/.test(e));

test('a kill after any step of the swap leaves a site the next report recovers, and no leftovers', () => {
  for (const hadSite of [true, false]) {
    for (let k = 0; k <= 3; k++) {
      const parent = join(tmp, `steps-${hadSite}-${k}`);
      const out = join(parent, 'site');
      if (hadSite) site(out, 'old');
      const n = swapNames(out, DEAD);
      site(n.stage, 'new'); // the staging folder is complete before the swap starts
      swapSteps(n).slice(0, k).forEach((step) => step()); // killed after k steps
      recoverSite(out);
      assert.deepEqual(leftovers(parent), [], `k=${k}`);
      const content = readFileSync(join(out, 'index.html'), 'utf8');
      // Before step 1 a standing site stays; otherwise the complete new one is published.
      assert.equal(content, hadSite && k === 0 ? 'old' : 'new', `hadSite=${hadSite} k=${k}`);
    }
  }
  // Killed while building (no marker yet): the half-built folder is removed, never published,
  // and the old site, if it had been moved aside, comes back.
  for (const hadSite of [true, false]) {
    const parent = join(tmp, `half-${hadSite}`);
    const out = join(parent, 'site');
    const n = swapNames(out, DEAD);
    if (hadSite) site(n.old, 'old');
    mkdirSync(n.stage, { recursive: true });
    writeFileSync(join(n.stage, 'index.html'), 'half');
    recoverSite(out);
    assert.deepEqual(leftovers(parent), []);
    if (hadSite) assert.equal(readFileSync(join(out, 'index.html'), 'utf8'), 'old');
    else assert.equal(existsSync(out), false);
  }
});

test('recovery leaves the folders of a live report alone, and a site without its pair is restored', () => {
  const parent = join(tmp, 'live');
  const out = join(parent, 'site');
  site(out, 'current');
  const live = swapNames(out, process.ppid); // a running process: a concurrent report
  site(live.stage, 'in progress');
  recoverSite(out);
  assert.equal(readFileSync(join(live.stage, 'index.html'), 'utf8'), 'in progress');
  assert.equal(readFileSync(join(out, 'index.html'), 'utf8'), 'current');
  rmSync(live.stage, { recursive: true });
  // Only an old copy left (the published site was deleted by hand after a killed swap).
  rmSync(out, { recursive: true });
  site(swapNames(out, DEAD).old, 'previous');
  recoverSite(out);
  assert.equal(readFileSync(join(out, 'index.html'), 'utf8'), 'previous');
  assert.deepEqual(leftovers(parent), []);
});

test('real SIGKILLs of bench report: after each, the next report finds a whole site and leaves no leftovers', { timeout: 600_000 }, async () => {
  const run = join(tmp, 'run');
  synthLedger({ out: run, rows: 12, seed: 3, items: 10 });
  const parent = join(tmp, 'killed');
  const out = join(parent, 'site');
  const args = [join(ROOT, 'bin', 'bench.js'), 'report', '--runs', run, '--out', out, '--no-svg'];
  const first = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8' });
  assert.equal(first.status, 0, first.stderr);
  // Time a whole report, then kill at spread fractions of it (the last ones near the swap).
  const t0 = Date.now();
  assert.equal(spawnSync(process.execPath, args, { cwd: ROOT }).status, 0);
  const full = Date.now() - t0;
  for (const f of [0.3, 0.6, 0.8, 0.9, 0.95, 0.98, 1.0]) {
    const p = spawn(process.execPath, args, { cwd: ROOT, stdio: 'ignore' });
    const closed = new Promise((r) => p.once('close', r));
    await new Promise((r) => setTimeout(r, Math.round(full * f)));
    p.kill('SIGKILL');
    await closed;
    // What a reader sees right after the kill: a site, or the pair recovery will promote.
    const names = swapNames(out, p.pid!);
    assert.ok(existsSync(join(out, 'index.html')) || (existsSync(names.old) && existsSync(names.stage)), `kill at ${f}: no site and nothing to recover`);
    const again = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8' });
    assert.equal(again.status, 0, again.stderr);
    assert.ok(existsSync(join(out, 'index.html')));
    assert.deepEqual(leftovers(parent), [], `kill at ${f}`);
  }
});
