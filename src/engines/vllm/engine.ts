/**
 * The vLLM engine: `Engine` over `/v1/completions` with token-id prompts. Loglikelihoods
 * come from `prompt_logprobs` (ids as keys, vocabulary rank for the greedy check; the
 * lm-eval vllm backend's way) or, for servers/proxies without that extension, from
 * `echo` + `logprobs` (lm-eval local-completions' way). Reference: vllm.md §4, lm-eval.md §2, §6.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../errors.ts';
import type {
  Engine,
  EngineInfo,
  LoglikelihoodRequest,
  LoglikelihoodResult,
  RollingRequest,
  RollingResult,
  TopLogprobsRequest,
  TopLogprobsResult,
} from '../engine.ts';
import { rollingWindows } from '../rolling.ts';
import { HttpClient } from './client.ts';
import { vllmServeCommand, type ServerCommand } from './config.ts';
import { ManagedServer } from './process.ts';

export type ScoringMode = 'prompt_logprobs' | 'echo';

export interface VllmClientOptions {
  /** Prompts per HTTP request. */
  batchSize?: number;
  requestTimeoutMs?: number;
  retries?: number;
  backoffMs?: number;
  mode?: ScoringMode;
  /** Token that conditions a document's first token; default BOS (else EOS) of config.json. */
  prefixToken?: number;
  vocabSize?: number;
}

export interface VllmStartOptions extends VllmClientOptions {
  /** Checkpoint directory or repo id (`vllm serve <model>`). */
  model: string;
  /** Served name (e.g. the job hash); keeps paths out of requests and ledgers. */
  servedName: string;
  command?: ServerCommand;
  logPath: string;
  signal?: AbortSignal;
}

interface PromptLogprobEntry {
  logprob: number;
  rank?: number;
  decoded_token?: string;
}
type PromptLogprobs = (Record<string, PromptLogprobEntry> | null)[];

interface Choice {
  index: number;
  text: string;
  logprobs: { tokens: string[]; token_logprobs: (number | null)[]; top_logprobs: (Record<string, number> | null)[] } | null;
  prompt_logprobs?: PromptLogprobs | null;
}

interface CompletionResponse {
  choices: Choice[];
}

/** Vocabulary size and prefix token from a local checkpoint's config.json, when there is one. */
function localModelFacts(model: string): { vocabSize?: number; prefixToken?: number } {
  const p = join(model, 'config.json');
  if (!existsSync(p)) return {};
  try {
    const raw = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    const first = (v: unknown) => (Array.isArray(v) ? v[0] : v);
    const bos = first(raw.bos_token_id);
    const eos = first(raw.eos_token_id);
    return {
      vocabSize: typeof raw.vocab_size === 'number' ? raw.vocab_size : undefined,
      prefixToken: typeof bos === 'number' ? bos : typeof eos === 'number' ? eos : undefined,
    };
  } catch {
    return {};
  }
}

export class VllmEngine implements Engine {
  readonly info: EngineInfo;
  /** Longest prompt + generated tokens the server accepts (`max_model_len`). */
  readonly maxModelLen: number;
  private readonly client: HttpClient;
  private readonly batchSize: number;
  private readonly mode: ScoringMode;
  private closed = false;

  private constructor(
    readonly baseUrl: string,
    readonly servedName: string,
    maxModelLen: number,
    opts: VllmClientOptions & { model: string },
    readonly server: ManagedServer | null,
  ) {
    if (!(maxModelLen >= 3)) throw new UserError(`server reports max_model_len ${maxModelLen}; it must be at least 3 to score anything`);
    this.maxModelLen = maxModelLen;
    const facts = localModelFacts(opts.model);
    const prefix = opts.prefixToken ?? facts.prefixToken;
    if (prefix === undefined) throw new UserError(`cannot tell the prefix (BOS) token of '${opts.model}': no bos/eos_token_id in its config.json; pass prefixToken`);
    this.info = {
      engine: 'vllm',
      model: opts.model,
      // One slot stays free for the token vLLM always generates.
      maxLength: maxModelLen - 1,
      vocabSize: opts.vocabSize ?? facts.vocabSize ?? 0,
      prefixToken: prefix,
    };
    this.batchSize = opts.batchSize ?? 64;
    this.mode = opts.mode ?? 'prompt_logprobs';
    const logPath = server?.logPath;
    this.client = new HttpClient({
      baseUrl,
      timeoutMs: opts.requestTimeoutMs,
      retries: opts.retries,
      backoffMs: opts.backoffMs,
      logPath,
      checkAlive: server
        ? () => {
            if (!server.alive) throw new UserError(`vLLM server '${servedName}' died mid-run (${server.describeExit()}); finished results are kept, rerun to resume; log: ${logPath}`);
          }
        : undefined,
    });
  }

  /** Start a server for `model` and connect to it. */
  static async start(o: VllmStartOptions): Promise<VllmEngine> {
    const server = await ManagedServer.start({ command: o.command ?? vllmServeCommand(), model: o.model, servedName: o.servedName, logPath: o.logPath, signal: o.signal });
    try {
      return new VllmEngine(server.url, o.servedName, server.maxModelLen, o, server);
    } catch (e) {
      await server.stop();
      throw e;
    }
  }

  /** Use a server someone else runs (no supervision). */
  static async connect(baseUrl: string, servedName: string, o: VllmClientOptions & { model: string }): Promise<VllmEngine> {
    let body: { data?: { id: string; max_model_len?: number }[] };
    try {
      const r = await fetch(`${baseUrl}/v1/models`, { signal: AbortSignal.timeout(10_000) });
      body = (await r.json()) as typeof body;
    } catch (e) {
      throw new UserError(`no OpenAI-compatible server at ${baseUrl} (${(e as Error).message}); start it or fix the URL`);
    }
    const m = body.data?.find((d) => d.id === servedName);
    if (!m) throw new UserError(`${baseUrl} does not serve '${servedName}' (it serves ${body.data?.map((d) => d.id).join(', ') || 'nothing'}); fix the served name`);
    return new VllmEngine(baseUrl, servedName, m.max_model_len ?? 0, o, null);
  }

  /** What to record with every result scored through this engine. */
  provenance(): Record<string, unknown> {
    return {
      engine: 'vllm',
      servedName: this.servedName,
      serverVersion: this.server?.version ?? null,
      serverArgv: this.server ? [...this.server.argv] : null,
      serverLog: this.server?.logPath ?? null,
      maxModelLen: this.maxModelLen,
      rollingWindow: this.rollingWindowLength,
      scoringMode: this.mode,
      prefixToken: this.info.prefixToken,
      retriedRequests: this.client.retried,
    };
  }

  /** Attempts retried so far (transient HTTP failures). */
  get retried(): number {
    return this.client.retried;
  }

  private async complete(body: Record<string, unknown>): Promise<Choice[]> {
    if (this.closed) throw new Error('VllmEngine used after close()');
    const r = await this.client.post<CompletionResponse>('/v1/completions', { model: this.servedName, temperature: 0, n: 1, ...body });
    const n = Array.isArray(body.prompt) && Array.isArray(body.prompt[0]) ? body.prompt.length : 1;
    if (!Array.isArray(r.choices) || r.choices.length !== n) throw new UserError(`server returned ${r.choices?.length ?? 0} choices for ${n} prompts; the server is not vLLM-compatible`);
    // vllm.md §4.2 rule 7: order by index, not by array position.
    return [...r.choices].sort((a, b) => a.index - b.index);
  }

  async loglikelihood(requests: readonly LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]> {
    const maxPrompt = this.maxModelLen - 1;
    const prepared = requests.map((q, i) => {
      if (q.context.length === 0) throw new UserError(`loglikelihood request ${i} has an empty context; put the prefix (BOS) token there`);
      if (q.continuation.length === 0) throw new UserError(`loglikelihood request ${i} has an empty continuation`);
      if (q.continuation.length >= maxPrompt) throw new UserError(`loglikelihood request ${i}: continuation of ${q.continuation.length} tokens does not fit max_model_len ${this.maxModelLen}; raise --max-model-len`);
      let full = [...q.context, ...q.continuation];
      let ctxlen = q.context.length;
      // lm-eval: left-truncate the context, never the continuation.
      if (full.length > maxPrompt) {
        const cut = full.length - maxPrompt;
        full = full.slice(cut);
        ctxlen -= cut;
      }
      return { full, ctxlen };
    });
    const out: LoglikelihoodResult[] = [];
    for (let b = 0; b < prepared.length; b += this.batchSize) {
      const batch = prepared.slice(b, b + this.batchSize);
      const prompt = batch.map((p) => p.full);
      const body = this.mode === 'prompt_logprobs' ? { prompt, max_tokens: 1, prompt_logprobs: 0 } : { prompt, max_tokens: 1, echo: true, logprobs: 1 };
      const choices = await this.complete(body);
      for (let i = 0; i < batch.length; i++) out.push(this.mode === 'prompt_logprobs' ? fromPromptLogprobs(choices[i], batch[i].full, batch[i].ctxlen) : fromEcho(choices[i], batch[i].full, batch[i].ctxlen));
    }
    return out;
  }

  /** lm-eval vllm backend (>= v0.4.10): L = max_model_len - 2, each window sent whole. */
  get rollingWindowLength(): number {
    return this.maxModelLen - 2;
  }

  async loglikelihoodRolling(requests: readonly RollingRequest[]): Promise<RollingResult[]> {
    const L = this.rollingWindowLength;
    const flat: LoglikelihoodRequest[] = [];
    const owner: number[] = [];
    requests.forEach((r, i) => {
      for (const w of rollingWindows(r.tokens, L, this.info.prefixToken)) {
        flat.push({ context: w.tokens.slice(0, w.contextLength), continuation: w.tokens.slice(w.contextLength) });
        owner.push(i);
      }
    });
    const scored = await this.loglikelihood(flat);
    const results: RollingResult[] = requests.map((r) => ({ logprob: 0, tokenLogprobs: new Float64Array(r.tokens.length) }));
    const filled = new Int32Array(requests.length);
    scored.forEach((s, j) => {
      const r = results[owner[j]];
      r.tokenLogprobs.set(s.tokenLogprobs, filled[owner[j]]);
      filled[owner[j]] += s.tokenLogprobs.length;
    });
    for (const r of results) {
      let sum = 0;
      for (const v of r.tokenLogprobs) sum += v;
      r.logprob = sum;
    }
    return results;
  }

  async topLogprobs(requests: readonly TopLogprobsRequest[]): Promise<TopLogprobsResult[]> {
    requests.forEach((q) => {
      if (!Number.isInteger(q.k) || q.k < 1) throw new UserError(`top-k must be a positive integer, got ${q.k}`);
      if (q.tokens.length < 2) throw new UserError('top-k logprobs need at least 2 tokens');
      if (q.tokens.length > this.maxModelLen - 1) throw new UserError(`sequence of ${q.tokens.length} tokens does not fit max_model_len ${this.maxModelLen}; shorten it or raise --max-model-len`);
    });
    const out: TopLogprobsResult[] = new Array(requests.length);
    // One request per batch of sequences sharing k (prompt_logprobs is per request).
    const byK = new Map<number, number[]>();
    requests.forEach((q, i) => byK.set(q.k, [...(byK.get(q.k) ?? []), i]));
    for (const [k, idx] of byK) {
      for (let b = 0; b < idx.length; b += this.batchSize) {
        const batch = idx.slice(b, b + this.batchSize);
        const choices = await this.complete({ prompt: batch.map((i) => [...requests[i].tokens]), max_tokens: 1, prompt_logprobs: k });
        batch.forEach((i, j) => (out[i] = topFromPromptLogprobs(choices[j], requests[i].tokens, k)));
      }
    }
    return out;
  }

  async generateGreedy(prompt: readonly number[], maxNewTokens: number): Promise<number[]> {
    if (maxNewTokens <= 0) return [];
    const [c] = await this.complete({ prompt: [...prompt], max_tokens: maxNewTokens, logprobs: 0, return_tokens_as_token_ids: true });
    const toks = c.logprobs?.tokens;
    if (!Array.isArray(toks)) throw new UserError('server returned no logprobs.tokens for a generation; it must support return_tokens_as_token_ids');
    return toks.map((t) => {
      const m = /^token_id:(-?\d+)$/.exec(t);
      if (!m) throw new UserError(`server rendered token '${t}' without its id; it must support return_tokens_as_token_ids`);
      return Number(m[1]);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.server) await this.server.stop();
  }
}

function topFromPromptLogprobs(c: Choice, tokens: readonly number[], k: number): TopLogprobsResult {
  const plp = c.prompt_logprobs;
  if (!Array.isArray(plp) || plp.length !== tokens.length) throw new UserError('server returned no prompt_logprobs aligned with the prompt; it needs vLLM\'s prompt_logprobs extension');
  const positions = tokens.length - 1;
  const ids = new Int32Array(positions * k);
  const lps = new Float32Array(positions * k);
  const target = new Float64Array(positions);
  for (let p = 0; p < positions; p++) {
    const d = plp[p + 1];
    const tok = tokens[p + 1];
    const e = d?.[String(tok)];
    if (!d || !e) throw new UserError(`prompt_logprobs at position ${p + 1} lacks the prompt token ${tok}`);
    target[p] = e.logprob;
    // The dict holds the top-k plus the actual token: order by logprob (rank breaks ties).
    const ranked = Object.entries(d)
      .map(([id, v]) => ({ id: Number(id), lp: v.logprob, rank: v.rank ?? 0 }))
      .sort((a, b) => b.lp - a.lp || a.rank - b.rank || a.id - b.id);
    if (ranked.length < k) throw new UserError(`server returned ${ranked.length} alternatives, asked for ${k}; raise --max-logprobs`);
    for (let j = 0; j < k; j++) {
      ids[p * k + j] = ranked[j].id;
      lps[p * k + j] = ranked[j].lp;
    }
  }
  return { positions, k, ids, logprobs: lps, targetLogprobs: target };
}

function fromPromptLogprobs(c: Choice, full: number[], ctxlen: number): LoglikelihoodResult {
  const plp = c.prompt_logprobs;
  if (!Array.isArray(plp) || plp.length !== full.length) throw new UserError(`server returned prompt_logprobs of length ${plp?.length ?? 0} for a prompt of ${full.length} tokens; it needs vLLM's prompt_logprobs extension (or use mode 'echo')`);
  const n = full.length - ctxlen;
  const tl = new Float64Array(n);
  let sum = 0;
  let greedy = true;
  for (let i = ctxlen; i < full.length; i++) {
    const e = plp[i]?.[String(full[i])];
    if (!e || typeof e.logprob !== 'number') throw new UserError(`prompt_logprobs at position ${i} lacks the prompt token ${full[i]}`);
    tl[i - ctxlen] = e.logprob;
    sum += e.logprob;
    if (e.rank !== 1) greedy = false;
  }
  return { logprob: sum, isGreedy: greedy, tokenLogprobs: tl };
}

/** lm-eval local-completions: sum of token_logprobs[ctxlen:-1]; greedy = equals the top value. */
function fromEcho(c: Choice, full: number[], ctxlen: number): LoglikelihoodResult {
  const lp = c.logprobs;
  if (!lp || !Array.isArray(lp.token_logprobs) || lp.token_logprobs.length < full.length) throw new UserError(`server returned ${lp?.token_logprobs?.length ?? 0} echoed logprobs for a prompt of ${full.length} tokens; it must support echo with logprobs`);
  const n = full.length - ctxlen;
  const tl = new Float64Array(n);
  let sum = 0;
  let greedy = true;
  for (let i = ctxlen; i < full.length; i++) {
    const v = lp.token_logprobs[i];
    if (typeof v !== 'number') throw new UserError(`echoed logprob at position ${i} is null`);
    tl[i - ctxlen] = v;
    sum += v;
    const top = lp.top_logprobs[i];
    if (top) {
      let max = -Infinity;
      for (const x of Object.values(top)) if (x > max) max = x;
      if (v !== max) greedy = false;
    }
  }
  return { logprob: sum, isGreedy: greedy, tokenLogprobs: tl };
}
