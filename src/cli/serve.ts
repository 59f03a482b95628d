/**
 * `bench serve [MODEL] [--model DIR] [--port N] [--host 127.0.0.1]`: the embedded engine behind
 * the subset of vLLM's OpenAI-compatible API the harness uses. Accepts vLLM's argv shape
 * (`serve MODEL --served-model-name N --host H --port P`) so it can stand in for `vllm serve`.
 */
import type { Command } from 'commander';
import { UserError } from '../errors.ts';
import { startBenchServe } from '../serve/index.ts';

function intIn(flag: string, min: number, max: number) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new UserError(`${flag} must be an integer in ${min}..${max}, got '${v}'`);
    return n;
  };
}

export function register(program: Command): void {
  program
    .command('serve')
    .description("serve a model through vLLM's OpenAI-compatible completions API (embedded ONNX engine)")
    .argument('[model]', "model directory, or 'stories260k' (same as --model)")
    .option('--model <dir>', "model directory, or 'stories260k'")
    .option('--served-model-name <name>', 'name requests must send (default: the model argument)')
    .option('--host <host>', 'bind address', '127.0.0.1')
    .option('--port <n>', 'port (0 = any free port)', intIn('--port', 0, 65535), 8000)
    .option('--max-logprobs <n>', 'cap on logprobs / prompt_logprobs per request', intIn('--max-logprobs', 0, 1 << 20), 20)
    .option('--max-model-len <n>', 'prompt + generated tokens limit (default: the model context)', intIn('--max-model-len', 2, 1 << 24))
    .option('--threads <n>', 'onnxruntime threads', intIn('--threads', 1, 256), 1)
    .action(async (positional: string | undefined, o: { model?: string; servedModelName?: string; host: string; port: number; maxLogprobs: number; maxModelLen?: number; threads: number }) => {
      if (positional && o.model && positional !== o.model) throw new UserError(`two models given ('${positional}' and --model '${o.model}'); pass one`);
      const model = positional ?? o.model;
      if (!model) throw new UserError('no model given; pass a model directory (bench serve DIR, or --model DIR)');
      const s = await startBenchServe({ model, servedName: o.servedModelName, host: o.host, port: o.port, maxLogprobs: o.maxLogprobs, maxModelLen: o.maxModelLen, threads: o.threads });
      process.stderr.write(`bench serve: '${s.name}' on ${s.running.url} (Application startup complete.)\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.stderr.write('bench serve: shutting down\n');
          void s.close().then(resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
