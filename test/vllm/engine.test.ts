/**
 * The vLLM engine against real server processes on loopback: fake-vllm.ts runs the real
 * `bench serve` HTTP server (src/serve/server.ts) over a closed-form fake engine, in vLLM's
 * place, with fault modes. Every expected number is computed here from the closed form;
 * every test checks by pid that no server, grandchild or watchdog is left behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VllmEngine, ManagedServer, buildServerArgv, parseServerCommand, vllmServeCommand } from '../../src/engines/vllm/index.ts';
import { ToolError, UserError } from '../../src/errors.ts';
import { fakeCommand } from './fixtures/command.ts';
import { expectedLogprobs, argmax, BOS } from './fixtures/fake-engine.ts';

const dir = mkdtempSync(join(tmpdir(), 'vllm-test-'));
let logN = 0;
const logPath = () => join(dir, `job-${++logN}`, 'server.log');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MAX_LEN = 64;

function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return true;
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); // zombie = dead
  } catch {
    return true;
  }
}
async function assertGone(pid: number | undefined, what: string, ms = 8000): Promise<void> {
  assert.ok(pid, `${what} has a pid`);
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (isGone(pid!)) return;
    await sleep(50);
  }
  assert.fail(`${what} (pid ${pid}) is still running`);
}
async function expectError<E extends Error>(p: Promise<unknown>, re: RegExp, kind: new (...a: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof kind, `expected a ${kind.name}, got ${(e as Error).stack}`);
    assert.match(e.message, re);
    assert.ok(!e.message.includes('\n'), 'one line');
    return e;
  }
  assert.fail('expected an error');
}
const expectUserError = (p: Promise<unknown>, re: RegExp) => expectError(p, re, UserError);
/** Server failures are the tool's, not the user's: ToolError, exit code 3. */
async function expectToolError(p: Promise<unknown>, re: RegExp): Promise<ToolError> {
  const e = await expectError(p, re, ToolError);
  assert.equal(e.exitCode, 3);
  return e;
}
/** The server started by a failing call: found through its log's start line and pid. */
function pidFromLog(path: string): number {
  const m = /pid=(\d+)/.exec(readFileSync(path, 'utf8'));
  assert.ok(m, 'log names the server pid');
  return Number(m![1]);
}

// Independent expectations from the closed form.
function llExpected(ctx: number[], cont: number[]): { ll: number; greedy: boolean } {
  const all = [...ctx, ...cont];
  let ll = 0;
  let greedy = true;
  for (let i = ctx.length; i < all.length; i++) {
    const d = expectedLogprobs(all[i - 1], i - 1);
    ll += d[all[i]];
    if (argmax(d) !== all[i]) greedy = false;
  }
  return { ll, greedy };
}
const near = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} != ${b}`);

async function startFake(extra: string[] = [], o: Parameters<typeof VllmEngine.start>[0] extends infer T ? Partial<T> : never = {}) {
  return VllmEngine.start({ model: 'fake-model', servedName: 'job-test', logPath: logPath(), command: fakeCommand(['--max-model-len', String(MAX_LEN), ...extra]), prefixToken: BOS, vocabSize: 40, ...o });
}

test('scores loglikelihood, rolling, top-k and greedy generation exactly as the closed form says (both scoring modes)', async () => {
  for (const mode of ['prompt_logprobs', 'echo'] as const) {
    const e = await startFake([], { mode, batchSize: 2 });
    const pid = e.server!.pid;
    const watchdog = e.server!.watchdog;
    try {
      assert.equal(e.maxModelLen, MAX_LEN);
      assert.equal(e.info.maxLength, MAX_LEN - 1);
      const greedyCont = (() => {
        const all = [BOS, 5];
        for (let i = 0; i < 3; i++) all.push(argmax(expectedLogprobs(all[all.length - 1], all.length - 1)));
        return all.slice(2);
      })();
      const reqs = [
        { context: [BOS, 5, 6], continuation: [7, 8] },
        { context: [BOS], continuation: [30, 31, 32, 33] },
        { context: [BOS, 5], continuation: greedyCont },
        { context: [BOS, 9, 9, 9], continuation: [1] },
        // longer than the window: the context is cut from the left, the continuation kept
        { context: Array.from({ length: 70 }, (_, i) => (i * 3) % 40), continuation: [4, 5] },
      ];
      const got = await e.loglikelihood(reqs);
      reqs.forEach((q, i) => {
        let ctx = q.context;
        const over = ctx.length + q.continuation.length - (MAX_LEN - 1);
        if (over > 0) ctx = ctx.slice(over);
        const want = llExpected(ctx, q.continuation);
        near(got[i].logprob, want.ll);
        assert.equal(got[i].isGreedy, want.greedy, `isGreedy of request ${i}`);
        assert.equal(got[i].tokenLogprobs.length, q.continuation.length);
      });
      assert.equal(got[2].isGreedy, true);
      assert.equal(e.provenance().serverVersion, '0.0.0-test');
      assert.equal(e.provenance().rollingWindow, MAX_LEN - 2);

      // Rolling, N = 100, L = max_model_len - 2 = 62 (lm-eval vllm >= 0.4.10), written out by hand:
      // window 1 feeds [BOS] + T[0..61] and scores T[0..61]; window 2 feeds T[37..99]
      // (context T[37..61]) and scores T[62..99], token j at window position j-1-37.
      const T = Array.from({ length: 100 }, (_, i) => (i * 7 + 3) % 40);
      let want = 0;
      for (let j = 0; j < 62; j++) want += expectedLogprobs(j === 0 ? BOS : T[j - 1], j)[T[j]];
      for (let j = 62; j < 100; j++) want += expectedLogprobs(T[j - 1], j - 1 - 37)[T[j]];
      const [roll, short] = await e.loglikelihoodRolling([{ tokens: T }, { tokens: [3, 4] }]);
      near(roll.logprob, want);
      assert.equal(roll.tokenLogprobs.length, 100);
      near(short.logprob, expectedLogprobs(BOS, 0)[3] + expectedLogprobs(3, 1)[4]);

      if (mode === 'prompt_logprobs') {
        // Mixed k, more sequences than one batch (batchSize 2): each result in request order.
        const seqs = [[BOS, 4, 5, 6], [BOS, 9, 8], [BOS, 30, 1, 2, 3], [BOS, 7]];
        const ks = [3, 2, 3, 1];
        const tops = await e.topLogprobs(seqs.map((tokens, i) => ({ tokens, k: ks[i] })));
        tops.forEach((top, s) => {
          const seq = seqs[s];
          const k = ks[s];
          assert.equal(top.positions, seq.length - 1);
          assert.equal(top.k, k);
          for (let p = 0; p < seq.length - 1; p++) {
            const d = expectedLogprobs(seq[p], p);
            const order = [...d.keys()].sort((a, b) => d[b] - d[a]);
            assert.deepEqual([...top.ids.subarray(p * k, p * k + k)], order.slice(0, k));
            for (let j = 0; j < k; j++) near(top.logprobs[p * k + j], d[order[j]], 1e-6);
            near(top.targetLogprobs[p], d[seq[p + 1]]);
          }
        });
        const gen = await e.generateGreedy([BOS, 5], 3);
        assert.deepEqual(gen, greedyCont);
      }
    } finally {
      await e.close();
    }
    await assertGone(pid, 'server');
    await assertGone(watchdog, 'watchdog');
  }
});

test('model paths with spaces, quotes and ; reach the server untouched (no shell)', async () => {
  const weird = join(dir, `my model "q" 'x'; rm -rf nothing $(echo hi) {port}`);
  const e = await VllmEngine.start({ model: weird, servedName: 'job; name "x"', logPath: logPath(), command: fakeCommand(), prefixToken: BOS, vocabSize: 40 });
  const pid = e.server!.pid;
  try {
    const m = await (await fetch(`${e.baseUrl}/v1/models`)).json();
    assert.equal(m.data[0].root, weird);
    assert.equal(m.data[0].id, 'job; name "x"');
    assert.ok(e.server!.argv.includes(weird));
    const [r] = await e.loglikelihood([{ context: [BOS], continuation: [3] }]);
    near(r.logprob, expectedLogprobs(BOS, 0)[3]);
  } finally {
    await e.close();
  }
  await assertGone(pid, 'server');
});

test('a server that never becomes healthy: startup timeout, one-line error with the log, process killed', async () => {
  const lp = logPath();
  const err = await expectToolError(
    VllmEngine.start({ model: 'm', servedName: 'job-x', logPath: lp, command: fakeCommand(['--mode', 'never-healthy'], { startupTimeoutMs: 1500 }), prefixToken: BOS }),
    /did not become healthy within 2 s.*log: /,
  );
  assert.ok(err.message.includes(lp));
  await assertGone(pidFromLog(lp), 'server');
});

test('a server that fails at startup: the real error line from its log, not the wrapper', async () => {
  const lp = logPath();
  await expectToolError(
    VllmEngine.start({ model: 'm', servedName: 'job-x', logPath: lp, command: fakeCommand(['--mode', 'crash-start']), prefixToken: BOS }),
    /exited with code 1: ValueError: Free memory on device .* before becoming ready.*log: .*server\.log$/,
  );
  await assertGone(pidFromLog(lp), 'server');
});

test('a server command that does not exist: one-line error naming it', async () => {
  await expectToolError(
    VllmEngine.start({ model: 'm', servedName: 'job-x', logPath: logPath(), command: { ...vllmServeCommand(), command: join(dir, 'no-such-vllm') }, prefixToken: BOS }),
    /no-such-vllm|ENOENT/,
  );
});

test('a server that dies mid-run: the next request fails at once with the exit and the log', async () => {
  const e = await startFake(['--mode', 'exit-after:1'], { retries: 2, backoffMs: 20 });
  const pid = e.server!.pid;
  try {
    const [ok] = await e.loglikelihood([{ context: [BOS], continuation: [3] }]);
    near(ok.logprob, expectedLogprobs(BOS, 0)[3]);
    const err = await expectUserError(e.loglikelihood([{ context: [BOS], continuation: [3] }]), /died mid-run \(exited with code 3: EngineDeadError.*log: /);
    assert.ok(err.message.includes(e.server!.logPath));
  } finally {
    await e.close();
  }
  await assertGone(pid, 'server');
});

test('a server that hangs: bounded retries with a request timeout, then a one-line error', async () => {
  const e = await startFake(['--mode', 'hang-after:0'], { requestTimeoutMs: 400, retries: 1, backoffMs: 20 });
  const pid = e.server!.pid;
  const t0 = Date.now();
  try {
    await expectUserError(e.loglikelihood([{ context: [BOS], continuation: [3] }]), /after 2 attempts \(no answer within 0 s \(server hung\?\)\).*log: /);
    assert.ok(Date.now() - t0 < 5000);
  } finally {
    await e.close();
  }
  await assertGone(pid, 'server');
});

test('HTTP 500s are retried with backoff and then succeed; persistent 500s give an error', async () => {
  const e = await startFake(['--mode', 'http500:2'], { retries: 3, backoffMs: 10 });
  const pid = e.server!.pid;
  try {
    const [r] = await e.loglikelihood([{ context: [BOS, 2], continuation: [3] }]);
    near(r.logprob, expectedLogprobs(2, 1)[3]);
    assert.equal(e.retried, 2);
  } finally {
    await e.close();
  }
  await assertGone(pid, 'server');
  const e2 = await startFake(['--mode', 'always500'], { retries: 2, backoffMs: 10 });
  try {
    await expectUserError(e2.loglikelihood([{ context: [BOS], continuation: [3] }]), /after 3 attempts \(HTTP 500: EngineCore hiccup\).*log: /);
  } finally {
    await e2.close();
  }
  await assertGone(e2.server!.pid, 'server');
});

test("a port that serves someone else's model is refused", async () => {
  const lp = logPath();
  await expectToolError(
    VllmEngine.start({ model: 'm', servedName: 'job-mine', logPath: lp, command: fakeCommand(['--mode', 'other-name']), prefixToken: BOS }),
    /serves model 'someone-else', not 'job-mine'.*log: /,
  );
  await assertGone(pidFromLog(lp), 'server');
});

test('a fixed port already taken gives a one-line error before anything starts', async () => {
  const blocker = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => blocker.once('listening', r));
  const port = (blocker.address() as { port: number }).port;
  try {
    await expectUserError(
      VllmEngine.start({ model: 'm', servedName: 'job-x', logPath: logPath(), command: fakeCommand([], { port }), prefixToken: BOS }),
      new RegExp(`port ${port} on 127.0.0.1 is already in use`),
    );
  } finally {
    blocker.close();
  }
});

test('stop escalates to SIGKILL after the grace period and takes the whole process group down', async () => {
  const lp = logPath();
  const s = await ManagedServer.start({ model: 'm', servedName: 'job-g', logPath: lp, command: fakeCommand(['--mode', 'ignore-term'], { graceMs: 500 }) });
  const s2 = await ManagedServer.start({ model: 'm', servedName: 'job-h', logPath: logPath(), command: fakeCommand(['--mode', 'grandchild']) });
  const grandchild = Number(/engine core pid=(\d+)/.exec(readFileSync(s2.logPath, 'utf8'))![1]);
  assert.ok(!isGone(grandchild));
  const t0 = Date.now();
  const e1 = await s.stop();
  assert.equal(e1.signal, 'SIGKILL');
  assert.ok(Date.now() - t0 >= 450);
  const e2 = await s2.stop();
  assert.equal(e2.signal, 'SIGTERM');
  await assertGone(s.pid, 'server ignoring SIGTERM');
  await assertGone(s2.pid, 'server');
  await assertGone(grandchild, 'grandchild in the server group');
});

test('an orchestrator killed with SIGKILL does not leave its server behind (watchdog)', async () => {
  const orch = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'orchestrator.ts'), logPath()], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('orchestrator did not start')), 20_000);
    orch.stdout!.on('data', (c) => {
      buf += c;
      if (buf.includes('\n')) {
        clearTimeout(t);
        resolve(buf.split('\n')[0]);
      }
    });
  });
  const { pid, watchdog } = JSON.parse(line) as { pid: number; watchdog: number };
  assert.ok(!isGone(pid));
  orch.kill('SIGKILL');
  await assertGone(orch.pid, 'orchestrator');
  await assertGone(pid, 'orphaned server', 10_000);
  await assertGone(watchdog, 'watchdog', 5000);
});

test('server command: placeholders only as whole elements, site flags appended, config validated', () => {
  const cmd = parseServerCommand({ command: '/opt/venv/bin/vllm', extraArgs: ['-tp', '2', '--max-model-len', '4096'], env: { CUDA_VISIBLE_DEVICES: '2,3' } }, 'models.json llama3');
  assert.deepEqual(buildServerArgv(cmd, { model: '/ck/{port} x', name: 'job-1', host: '127.0.0.1', port: 41873 }), [
    'serve', '/ck/{port} x', '--served-model-name', 'job-1', '--host', '127.0.0.1', '--port', '41873', '-tp', '2', '--max-model-len', '4096',
  ]);
  assert.equal(cmd.env!.CUDA_VISIBLE_DEVICES, '2,3');
  assert.deepEqual(vllmServeCommand().extraArgs, ['--generation-config', 'vllm', '--no-enable-prefix-caching', '--max-logprobs', '20', '--seed', '0']);
  assert.throws(() => parseServerCommand({ comand: 'vllm' }, 'models.json'), /unknown key 'comand'/);
  assert.throws(() => parseServerCommand({ args: ['serve', '{model}'] }, 'models.json'), /must contain "\{port\}"/);
  assert.throws(() => parseServerCommand({ extraArgs: '-tp 2' }, 'models.json'), /extraArgs must be a list of strings/);
});
