/**
 * `bench serve`'s logic: open the embedded engine and tokenizer for a model directory and
 * put them behind the vLLM-compatible API. The HTTP part (server.ts) knows only `Engine`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '../checkpoint/tokenizer.ts';
import { openOnnxCheckpoint } from '../engines/onnx/checkpoint.ts';
import { UserError } from '../errors.ts';
import { CompletionServer, type RunningServer } from './server.ts';

export { CompletionServer, OrderedDict, toJsonText, type ServeOptions, type ServeTokenizer, type RunningServer } from './server.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface BenchServeOptions {
  model: string;
  servedName?: string;
  host: string;
  port: number;
  maxLogprobs: number;
  maxModelLen?: number;
  threads: number;
}

/**
 * Whether every token of a Hugging Face tokenizer stands for at most its own decoded text, so
 * text bytes / longest token bounds the token count from below: byte-level BPE (any byte is a
 * symbol) or BPE with byte fallback. Not so for WordPiece (a long word is one [UNK]) or for
 * unknown-token runs fused into one token.
 */
export function tokensBoundText(tokenizerJson: unknown): boolean {
  const j = tokenizerJson as { model?: { type?: string; byte_fallback?: boolean }; pre_tokenizer?: unknown; decoder?: unknown } | null;
  const hasByteLevel = (x: unknown): boolean => {
    if (!x || typeof x !== 'object') return false;
    const o = x as { type?: string; pretokenizers?: unknown[]; decoders?: unknown[] };
    return o.type === 'ByteLevel' || [...(o.pretokenizers ?? []), ...(o.decoders ?? [])].some(hasByteLevel);
  };
  return j?.model?.type === 'BPE' && (j.model.byte_fallback === true || hasByteLevel(j.pre_tokenizer) || hasByteLevel(j.decoder));
}

function packageVersion(): string {
  try {
    return `bench-serve-${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version}`;
  } catch {
    return 'bench-serve';
  }
}

export async function startBenchServe(o: BenchServeOptions): Promise<{ running: RunningServer; close(): Promise<void>; name: string }> {
  const dir = o.model === 'stories260k' ? join(ROOT, 'models', 'stories260k') : resolve(o.model);
  if (!existsSync(join(dir, 'config.json'))) throw new UserError(`${o.model}: not a model directory (no config.json); pass a Hugging Face model directory or 'stories260k'`);
  const { engine } = await openOnnxCheckpoint(dir, { threads: o.threads, ...(o.maxModelLen ? { maxLength: o.maxModelLen } : {}) });
  const tokenizer = await loadTokenizer(dir);
  const name = o.servedName ?? o.model;
  let bounded = false;
  try {
    bounded = tokensBoundText(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')));
  } catch {
    // no readable tokenizer.json: prompts are tokenized whole, within the body limit
  }
  const api = new CompletionServer(engine, tokenizer, { modelName: name, root: o.model, maxLogprobs: o.maxLogprobs, maxModelLen: o.maxModelLen, version: packageVersion(), tokensBoundText: bounded });
  let running: RunningServer;
  try {
    running = await api.listen(o.port, o.host);
  } catch (e) {
    await engine.close();
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') throw new UserError(`port ${o.port} on ${o.host} is already in use (EADDRINUSE: Address already in use); choose another --port`);
    throw new UserError(`cannot listen on ${o.host}:${o.port} (${err.message}); check --host and --port`);
  }
  return {
    running,
    name,
    close: async () => {
      await running.close();
      await engine.close();
    },
  };
}
