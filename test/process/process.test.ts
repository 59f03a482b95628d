/**
 * The process supervisor (src/process) with real processes: the error-line rule on real
 * logs (an auto-round 0.16.1 crash recorded here, vLLM's wrapper line), the kill ladder on
 * the whole process group (a grandchild too), timeout, cancel, a command that does not
 * exist, and the run's failure record: a handler's TypeError keeps its stack, a server that
 * crashes at startup is a tool failure with exit code 3.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ToolError, UserError, describeFailure } from '../../src/errors.ts';
import { errorLine, runProcess, runTool, startProcess } from '../../src/process/index.ts';
import { planRun } from '../../src/matrix/plan.ts';
import { runPlan } from '../../src/runner/run.ts';
import { vllmHandlers } from '../../src/runner/vllm.ts';
import { fakeHandlers } from '../runner/fixtures/fake-handlers.ts';
import { makeProject, modelsJson } from '../runner/fixtures/project.ts';
import { gone } from '../helpers/pids.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'process-test-'));
let n = 0;
const log = () => join(tmp, `job-${++n}`, 'tool.log');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function assertGone(pid: number, what: string): Promise<void> {
  for (let i = 0; i < 100 && !gone(pid); i++) await sleep(50);
  assert.ok(gone(pid), `${what} (pid ${pid}) still running`);
}
const node = (code: string) => ({ command: process.execPath, args: ['-e', code] });

test('error line: the last exception line that is not a wrapper, from real tool logs', () => {
  // auto-round 0.16.1, NVFP4 with a local jsonl and ":concat=true" (recorded on this machine)
  const ar = readFileSync(join(ROOT, 'harness/fixtures/autoround/0.16.1/stderr_concat_crash.log'), 'utf8');
  assert.equal(errorLine(ar), "AttributeError: 'list' object has no attribute 'shape'");
  // vLLM's engine-core failure: the root cause above the wrapper
  const v = 'INFO starting\nValueError: Free memory on device (1.00/80.00 GiB) is less than desired\nRuntimeError: Engine core initialization failed. See root cause above.\n';
  assert.equal(errorLine(v), 'ValueError: Free memory on device (1.00/80.00 GiB) is less than desired');
  assert.equal(errorLine('# 2026 start: ["x"]\nall good\n\n'), 'all good');
  assert.equal(errorLine('auto-round: error: argument --scheme: invalid choice\n'), 'auto-round: error: argument --scheme: invalid choice');
  assert.equal(errorLine(''), null);
});

test('a tool that fails: ToolError (exit 3) with its error line, the fix and the log; a missing command says so', async () => {
  const lp = log();
  await assert.rejects(
    runTool({ tool: 'demo', ...node('console.error("Traceback (most recent call last):\\nKeyError: \'x\'"); process.exit(4)'), logPath: lp, fix: 'do the thing' }),
    (e: unknown) => e instanceof ToolError && e.exitCode === 3 && e.message === `demo exited with code 4: KeyError: 'x'; do the thing; log: ${lp}`,
  );
  await assert.rejects(
    runTool({ tool: 'demo', command: join(tmp, 'no-such-tool'), args: [], logPath: log(), fix: 'x' }),
    (e: unknown) => e instanceof ToolError && /could not start demo '.*no-such-tool' \(.*ENOENT.*\); build its environment with 'bench env'/.test((e as Error).message),
  );
  const ok = await runTool({ tool: 'demo', ...node('console.log("fine")'), logPath: log(), fix: 'x' });
  assert.equal(ok.exitCode, 0);
  assert.match(readFileSync(ok.logPath, 'utf8'), /start: \[.*\]\nfine\n# .* end: \{"exitCode":0/);
});

test('progress lines: stderr split on \\r and \\n, ANSI colours removed', async () => {
  const lines: string[] = [];
  await runProcess({ tool: 'demo', ...node('process.stderr.write("\\x1b[32mA 1/2\\x1b[0m\\rA 2/2\\nB\\n"); process.stderr.write("tail")'), logPath: log(), onLine: (l, s) => lines.push(`${s}:${l}`) });
  assert.deepEqual(lines, ['stderr:A 1/2', 'stderr:A 2/2', 'stderr:B', 'stderr:tail']);
});

test('cancel and timeout run the kill ladder on the process group: SIGTERM, grace, SIGKILL, grandchild included', async () => {
  // ignores SIGTERM and has a child in its group: only SIGKILL on the group ends both
  const code = 'process.on("SIGTERM", () => {}); const c = require("child_process").spawn(process.execPath, ["-e", "setInterval(()=>{},1000)"], { stdio: "ignore" }); console.log("child " + c.pid); setInterval(() => {}, 1000);';
  const ac = new AbortController();
  let child = 0;
  let stoppedAt = 0;
  const h = startProcess({
    tool: 'demo', ...node(code), logPath: log(), graceMs: 400, signal: ac.signal,
    onLine: (l) => {
      const m = /child (\d+)/.exec(l);
      if (!m) return;
      child = Number(m[1]);
      stoppedAt = Date.now();
      ac.abort(); // the SIGTERM handler is installed by now
    },
  });
  const e = await h.waitExit();
  assert.equal(e.cancelled, true);
  assert.equal(e.signal, 'SIGKILL');
  assert.ok(Date.now() - stoppedAt >= 380, 'waited the grace period before SIGKILL');
  await assertGone(h.pid!, 'tool');
  await assertGone(child, 'grandchild');
  const t = await runProcess({ tool: 'demo', ...node('setInterval(() => {}, 1000)'), logPath: log(), timeoutMs: 300 });
  assert.equal(t.timedOut, true);
  assert.equal(t.signal, 'SIGTERM');
  await assert.rejects(runTool({ tool: 'demo', ...node('setInterval(() => {}, 1000)'), logPath: log(), timeoutMs: 300, fix: 'x' }), /^ToolError: demo did not finish within 0 s and was stopped/);
});

test("the run's failure record: a handler's TypeError keeps its stack; user and tool errors keep their kind and cause", async () => {
  const root = makeProject(modelsJson({ schemes: ['BF16', 'W4A16'], methods: ['rtn'], recipes: ['default'] }));
  const h = fakeHandlers({ delayMs: 0, calls: { quantize: 0, base: 0, evaluate: 0 } });
  const s = await runPlan(planRun({ root, toolVersion: '0.0.0-test' }), {
    ...h,
    quantize: async () => {
      const missing = undefined as unknown as { layers: string[] };
      return { layers: missing.layers };
    },
  }, { runId: 'te', log: () => {} });
  assert.equal(s.failed.length, 1);
  const f = s.failed[0];
  assert.equal(f.kind, 'bug');
  assert.match(f.error, /Cannot read properties of undefined/);
  assert.match(f.stack!, /^TypeError: Cannot read properties of undefined[\s\S]*process\.test\.ts/);
  const runJson = JSON.parse(readFileSync(join(root, '.bench', 'runs', 'te', 'run.json'), 'utf8'));
  assert.match(runJson.summary.failures[0].stack, /^TypeError/);
  const cause = new Error('ECONNRESET');
  assert.deepEqual(describeFailure(new ToolError('server died', { cause })), { error: 'server died', kind: 'tool', exitCode: 3, causes: ['Error: ECONNRESET'] });
  assert.deepEqual(describeFailure(new UserError('bad flag')), { error: 'bad flag', kind: 'user', exitCode: 2 });
});

test('a server that crashes at startup fails its job as a tool failure (exit 3), not a usage error', async () => {
  const modelsFile = join(tmp, 'models.json');
  writeFileSync(modelsFile, JSON.stringify({
    models: { s: { source: join(ROOT, 'models', 'stories260k'), family: 'llama', engines: ['vllm'], overrides: { groupSize: 32 } } },
    recipes: { default: { iters: 200, nsamples: 128, seqlen: 2048, batchSize: 8, lr: null, minmaxLr: null, enableQuantedInput: true, enableMinmaxTuning: true } },
    matrix: { models: ['s'], schemes: ['BF16'], methods: ['rtn'], recipes: ['default'], suites: ['tinystories-ppl'] },
  }));
  const root = ROOT;
  const plan = planRun({ root, modelsFile, toolVersion: '0.0.0-test' });
  const crash = join(tmp, 'crashing-server.mjs');
  writeFileSync(crash, 'console.error("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"); console.error("RuntimeError: Engine core initialization failed. See root cause above."); process.exit(1);\n');
  const handlers = vllmHandlers({ logDir: join(tmp, 'logs'), root, env: { ...process.env, LOWBIT_VLLM_COMMAND: JSON.stringify([process.execPath, crash]) } });
  const s = await runPlan(plan, handlers, { runId: 'crash', benchDir: join(tmp, 'bench'), log: () => {} });
  assert.ok(s.failed.length >= 1);
  for (const f of s.failed) {
    assert.equal(f.kind, 'tool', `${f.label}: ${f.error}`);
    assert.equal(f.exitCode, 3);
    assert.match(f.error, /exited with code 1: torch\.OutOfMemoryError: CUDA out of memory\. Tried to allocate 2\.00 GiB before becoming ready.*log: /);
  }
});
