/**
 * `bench serve`: any `Engine` behind the subset of vLLM's OpenAI-compatible API that the
 * harness uses (/health, /v1/models, /v1/completions, /tokenize, /detokenize, /version),
 * with vLLM's response shapes (reference vllm.md §2.1, §4, §5). It lets the vLLM engine's
 * process handling and HTTP client be tested against a real server process, and lets a
 * CPU box answer the same requests a GPU box would.
 *
 * Bounded work per request, so /health stays responsive under hostile load: bodies over
 * MAX_BODY_BYTES are refused (413) unread, and (for tokenizers whose every token stands for
 * at most its own text: byte-level BPE, BPE with byte fallback) a text prompt longer in UTF-8
 * bytes than max_model_len x the longest token's bytes is refused (400) before it is
 * tokenized: it cannot fit, since no token covers more text than the longest vocabulary entry.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Engine } from '../engines/engine.ts';

/** What the server needs from a tokenizer (src/checkpoint/tokenizer.ts has this shape). */
export interface ServeTokenizer {
  encode(text: string, opts?: { addBos?: boolean }): number[];
  decode(ids: readonly number[]): string;
  readonly bosId: number | null;
  readonly eosId: number | null;
}

/** Largest request body read (4 MiB): a max_model_len prompt of token ids fits many times over. */
export const MAX_BODY_BYTES = 4 * 2 ** 20;

export interface ServeOptions {
  /** Served model name (`--served-model-name`); requests must send it. */
  modelName: string;
  /** What /v1/models reports as `root` (the checkpoint path). */
  root?: string;
  /** Cap on logprobs / prompt_logprobs (vLLM `--max-logprobs`, default 20). */
  maxLogprobs?: number;
  /** Prompt + generated tokens limit; default the engine's maxLength. */
  maxModelLen?: number;
  /**
   * The tokenizer maps no text run to fewer tokens than its bytes / longest token (no
   * unknown-token runs, no over-long words as one [UNK]): lets text length be checked before
   * tokenizing. index.ts decides it from tokenizer.json.
   */
  tokensBoundText?: boolean;
  version?: string;
}

/** An HTTP error with vLLM's JSON error body. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = status === 404 ? 'NotFoundError' : 'BadRequestError',
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

/** Per-position distribution facts the completions endpoint renders. */
interface Position {
  /** log P(actual token | prefix). */
  logprob: number;
  /** 1 + number of vocabulary entries strictly more likely than the actual token. */
  rank: number;
  ids: Int32Array;
  logprobs: Float32Array;
}

export interface RunningServer {
  server: Server;
  port: number;
  host: string;
  url: string;
  close(): Promise<void>;
}

export class CompletionServer {
  private readonly maxLogprobs: number;
  readonly maxModelLen: number;
  // Engines need not be re-entrant: run one engine call at a time.
  private queue: Promise<unknown> = Promise.resolve();
  private created = Math.floor(Date.now() / 1000);
  private maxTokenBytes: number | null = null;

  constructor(
    readonly engine: Engine,
    readonly tokenizer: ServeTokenizer,
    readonly opts: ServeOptions,
  ) {
    this.maxLogprobs = opts.maxLogprobs ?? 20;
    this.maxModelLen = opts.maxModelLen ?? engine.info.maxLength;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Request handler, usable with any node:http server. */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.route(req)
      .then(([status, body]) => send(res, status, body))
      .catch((e: unknown) => {
        if (e instanceof ApiError) {
          send(res, e.status, { error: { message: e.message, type: e.type, param: e.param, code: e.status } });
        } else {
          send(res, 500, { error: { message: String((e as Error)?.message ?? e), type: 'InternalServerError', param: null, code: 500 } });
        }
      });
  };

  async route(req: IncomingMessage): Promise<[number, unknown]> {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    if (method === 'GET' && path === '/health') return [200, null];
    if (method === 'GET' && path === '/version') return [200, { version: this.opts.version ?? 'bench-serve' }];
    if (method === 'GET' && path === '/v1/models') {
      return [200, { object: 'list', data: [{ id: this.opts.modelName, object: 'model', created: this.created, owned_by: 'vllm', root: this.opts.root ?? this.opts.modelName, parent: null, max_model_len: this.maxModelLen, permission: [] }] }];
    }
    if (method === 'POST' && path === '/v1/completions') return [200, await this.completions(await readJson(req))];
    if (method === 'POST' && path === '/tokenize') return [200, this.tokenize(await readJson(req))];
    if (method === 'POST' && path === '/detokenize') return [200, this.detokenize(await readJson(req))];
    throw new ApiError(404, `Not Found: ${method} ${path}`, 'NotFoundError');
  }

  private checkModel(model: unknown): void {
    if (model !== undefined && model !== null && model !== this.opts.modelName) throw new ApiError(404, `The model \`${String(model)}\` does not exist.`, 'NotFoundError', 'model');
  }

  /**
   * Upper bound on the UTF-8 bytes one token stands for: the longest token decoded alone,
   * plus one for the leading space SentencePiece drops when a word's token is decoded alone.
   */
  private tokenBytesBound(): number {
    if (this.maxTokenBytes === null) {
      let max = 1;
      for (let id = 0; id < this.engine.info.vocabSize; id++) {
        let text = '';
        try {
          text = this.tokenizer.decode([id]);
        } catch {
          // an id the tokenizer does not know (a padded embedding row) stands for no text
        }
        max = Math.max(max, Buffer.byteLength(text, 'utf8') + 1);
      }
      this.maxTokenBytes = max;
    }
    return this.maxTokenBytes;
  }

  /** Refuse, before tokenizing, a text that cannot fit in the context (see the header). */
  private checkTextLength(text: string): void {
    if (!this.opts.tokensBoundText) return;
    const limit = this.maxModelLen * this.tokenBytesBound();
    // A UTF-16 code unit is at most 3 UTF-8 bytes: count bytes only when the limit could be passed.
    if (text.length <= limit / 3) return;
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > limit)
      throw new ApiError(
        400,
        `This model's maximum context length is ${this.maxModelLen} tokens. However, your prompt is ${bytes} bytes of text, more than ${this.maxModelLen} tokens can hold (at most ${this.tokenBytesBound()} bytes each). Please reduce the length of the prompt.`,
        'BadRequestError',
        'prompt',
      );
  }

  tokenize(body: Record<string, unknown>): unknown {
    this.checkModel(body.model);
    if (typeof body.prompt !== 'string') throw new ApiError(400, 'prompt must be a string', 'BadRequestError', 'prompt');
    this.checkTextLength(body.prompt);
    const addBos = body.add_special_tokens === undefined ? true : Boolean(body.add_special_tokens);
    const tokens = body.prompt === '' ? [] : this.tokenizer.encode(body.prompt, { addBos });
    const strs = body.return_token_strs ? tokens.map((t) => this.tokenizer.decode([t])) : null;
    return { count: tokens.length, max_model_len: this.maxModelLen, tokens, token_strs: strs };
  }

  detokenize(body: Record<string, unknown>): unknown {
    this.checkModel(body.model);
    const tokens = body.tokens;
    if (!Array.isArray(tokens) || !tokens.every((t) => Number.isInteger(t))) throw new ApiError(400, 'tokens must be a list of token ids', 'BadRequestError', 'tokens');
    const vocab = this.engine.info.vocabSize;
    for (const t of tokens as number[]) if (t < 0 || t >= vocab) throw new ApiError(400, `Token id ${t} is out of vocabulary`, 'BadRequestError', 'tokens');
    try {
      return { prompt: this.tokenizer.decode(tokens as number[]) };
    } catch (e) {
      throw new ApiError(400, `tokens cannot be decoded: ${(e as Error).message}`, 'BadRequestError', 'tokens');
    }
  }

  private prompts(body: Record<string, unknown>): number[][] {
    const p = body.prompt;
    const addBos = body.add_special_tokens === undefined ? true : Boolean(body.add_special_tokens);
    const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.length > 0 && x.every((t) => Number.isInteger(t));
    const vocab = this.engine.info.vocabSize;
    let out: number[][];
    if (typeof p === 'string') this.checkTextLength(p);
    else if (Array.isArray(p)) for (const x of p) if (typeof x === 'string') this.checkTextLength(x);
    if (typeof p === 'string') out = [this.tokenizer.encode(p, { addBos })];
    else if (isIds(p)) out = [p];
    else if (Array.isArray(p) && p.length > 0 && p.every(isIds)) out = p as number[][];
    else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string')) out = (p as string[]).map((s) => this.tokenizer.encode(s, { addBos }));
    else throw new ApiError(400, 'prompt must be a string, a list of strings, a list of token ids or a list of lists of token ids', 'BadRequestError', 'prompt');
    for (const ids of out) {
      if (ids.length === 0) throw new ApiError(400, 'Prompt cannot be empty', 'BadRequestError', 'prompt');
      for (const t of ids) if (t < 0 || t >= vocab) throw new ApiError(400, `Token id ${t} is out of vocabulary`, 'BadRequestError', 'prompt');
    }
    return out;
  }

  private intField(body: Record<string, unknown>, name: string, dflt: number | null, min: number): number | null {
    const v = body[name];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ApiError(400, `${name} must be an integer >= ${min}`, 'BadRequestError', name);
    return v;
  }

  async completions(body: Record<string, unknown>): Promise<unknown> {
    this.checkModel(body.model);
    if (body.stream) {
      if (body.prompt_logprobs !== undefined && body.prompt_logprobs !== null) throw new ApiError(400, 'prompt_logprobs are not available when stream=True', 'BadRequestError', 'stream');
      throw new ApiError(400, 'bench serve does not stream', 'BadRequestError', 'stream');
    }
    checkTemperature(body.temperature);
    const n = this.intField(body, 'n', 1, 1);
    if (n !== 1) throw new ApiError(400, 'bench serve supports n = 1 only', 'BadRequestError', 'n');
    const prompts = this.prompts(body);
    const maxTokens = this.intField(body, 'max_tokens', 16, 0)!;
    const echo = Boolean(body.echo);
    const vocab = this.engine.info.vocabSize;
    const logprobs = this.intField(body, 'logprobs', null, -1);
    let promptLogprobs = this.intField(body, 'prompt_logprobs', null, -1);
    const cap = this.maxLogprobs;
    if (logprobs !== null && cap !== -1 && (logprobs === -1 || logprobs > cap))
      throw new ApiError(400, `Requested sample logprobs of ${logprobs === -1 ? vocab : logprobs}, which is greater than max allowed: ${cap}`, 'BadRequestError', 'logprobs');
    if (promptLogprobs !== null && cap !== -1 && (promptLogprobs === -1 || promptLogprobs > cap))
      throw new ApiError(400, `Requested prompt logprobs of ${promptLogprobs === -1 ? vocab : promptLogprobs}, which is greater than max allowed: ${cap}`, 'BadRequestError', 'prompt_logprobs');
    // vLLM: echo with logprobs implies prompt logprobs at the same k.
    if (echo && logprobs !== null && promptLogprobs === null) promptLogprobs = logprobs;
    for (const ids of prompts) {
      if (ids.length + maxTokens > this.maxModelLen)
        throw new ApiError(400, `This model's maximum context length is ${this.maxModelLen} tokens. However, you requested ${ids.length + maxTokens} tokens (${ids.length} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`, 'BadRequestError', 'max_tokens');
    }
    const asIds = Boolean(body.return_tokens_as_token_ids);
    const returnIds = Boolean(body.return_token_ids);
    // Token text as vLLM's incremental detokenizer shows it: what the token adds after a few
    // tokens of its context (SentencePiece drops a word's leading space when decoded alone).
    const tokStr = (id: number, seq: readonly number[], pos: number) => {
      if (asIds) return `token_id:${id}`;
      const ctx = seq.slice(Math.max(0, pos - 6), pos);
      if (ctx.length === 0) return this.tokenizer.decode([id]);
      const before = this.tokenizer.decode(ctx);
      const after = this.tokenizer.decode([...ctx, id]);
      return after.startsWith(before) ? after.slice(before.length) : this.tokenizer.decode([id]);
    };
    const kOf = (k: number) => (k === -1 ? vocab : k);

    const choices: unknown[] = [];
    let promptTokens = 0;
    let completionTokens = 0;
    for (let pi = 0; pi < prompts.length; pi++) {
      const ids = prompts[pi];
      const generated = maxTokens > 0 ? await this.serial(() => this.engine.generateGreedy(ids, maxTokens)) : [];
      const all = [...ids, ...generated];
      const needDist = logprobs !== null || promptLogprobs !== null;
      const kMax = Math.max(logprobs === null ? 0 : kOf(logprobs), promptLogprobs === null ? 0 : kOf(promptLogprobs));
      // positions[i] describes token i of `all` (i >= 1).
      const positions = needDist ? await this.distributions(all, kMax) : [];
      const promptText = this.tokenizer.decode(ids);
      const genText = this.tokenizer.decode(generated);
      promptTokens += ids.length;
      completionTokens += generated.length;

      let lp: unknown = null;
      if (logprobs !== null) {
        const k = kOf(logprobs);
        const from = echo ? 0 : ids.length;
        const tokens: string[] = [];
        const tokenLogprobs: (number | null)[] = [];
        const tops: (OrderedDict<number> | null)[] = [];
        const offsets: number[] = [];
        let off = 0;
        for (let i = from; i < all.length; i++) {
          const s = tokStr(all[i], all, i);
          tokens.push(s);
          offsets.push(off);
          off += [...s].length;
          if (i === 0) {
            tokenLogprobs.push(null);
            tops.push(null);
            continue;
          }
          const p = positions[i];
          tokenLogprobs.push(clampLp(p.logprob));
          // The actual token first, then the top-k; ids decoding to one string collapse.
          const d = new OrderedDict<number>();
          d.set(s, clampLp(p.logprob));
          for (let j = 0; j < k; j++) {
            const key = tokStr(p.ids[j], all, i);
            if (!d.has(key)) d.set(key, clampLp(p.logprobs[j]));
          }
          tops.push(d);
        }
        lp = { tokens, token_logprobs: tokenLogprobs, top_logprobs: tops, text_offset: offsets };
      }
      let plp: unknown = null;
      if (promptLogprobs !== null) {
        const k = kOf(promptLogprobs);
        type Entry = { logprob: number; rank: number; decoded_token: string };
        const list: (OrderedDict<Entry> | null)[] = [null];
        for (let i = 1; i < ids.length; i++) {
          const p = positions[i];
          const d = new OrderedDict<Entry>();
          d.set(String(ids[i]), { logprob: clampLp(p.logprob), rank: p.rank, decoded_token: tokStr(ids[i], ids, i) });
          for (let j = 0; j < k; j++) {
            const key = String(p.ids[j]);
            if (!d.has(key)) d.set(key, { logprob: clampLp(p.logprobs[j]), rank: j + 1, decoded_token: tokStr(p.ids[j], ids, i) });
          }
          list.push(d);
        }
        plp = list;
      }
      choices.push({
        index: pi,
        text: (echo ? promptText : '') + genText,
        logprobs: lp,
        finish_reason: generated.length < maxTokens ? 'stop' : 'length',
        stop_reason: null,
        prompt_logprobs: plp,
        prompt_token_ids: returnIds ? ids : null,
        token_ids: returnIds ? generated : null,
      });
    }
    return {
      id: `cmpl-bench-${Date.now().toString(36)}`,
      object: 'text_completion',
      created: Math.floor(Date.now() / 1000),
      model: this.opts.modelName,
      choices,
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    };
  }

  /**
   * Distribution facts for every token of `all` after the first. The rank needs the whole
   * vocabulary, so the engine is asked for all of it (bench serve is for small models).
   */
  private async distributions(all: number[], _k: number): Promise<Position[]> {
    const vocab = this.engine.info.vocabSize;
    const out: Position[] = [];
    if (all.length < 2) return out;
    const [r] = await this.serial(() => this.engine.topLogprobs([{ tokens: all, k: vocab }]));
    const K = r.k;
    if (r.positions !== all.length - 1 || r.ids.length !== r.positions * K || r.logprobs.length !== r.positions * K)
      throw new Error(`engine returned top-k arrays of ${r.ids.length} ids for ${r.positions} positions x k=${K}; engine bug`);
    out.push(undefined as unknown as Position); // position 0 has nothing to condition on
    for (let i = 0; i < r.positions; i++) {
      const ids = r.ids.subarray(i * K, (i + 1) * K);
      const lps = r.logprobs.subarray(i * K, (i + 1) * K);
      const target = r.targetLogprobs[i];
      const tid = all[i + 1];
      // Alternatives come as float32: compare at that precision and skip the token itself.
      const t32 = Math.fround(target);
      let better = 0;
      for (let j = 0; j < K; j++) if (ids[j] !== tid && lps[j] > t32) better++;
      out.push({ logprob: target, rank: better + 1, ids, logprobs: lps });
    }
    return out;
  }

  /** Listen on host:port (0 = any free port). Fails with the OS error if the port is taken. */
  listen(port: number, host = '127.0.0.1'): Promise<RunningServer> {
    const server = createServer(this.handle);
    server.keepAliveTimeout = 5000;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const addr = server.address() as AddressInfo;
        resolve({
          server,
          port: addr.port,
          host,
          url: `http://${host}:${addr.port}`,
          close: () =>
            new Promise<void>((res) => {
              server.closeAllConnections();
              server.close(() => res());
            }),
        });
      });
    });
  }
}

/**
 * vLLM's rule (SamplingParams._verify_args; VLLMValidationError -> HTTP 400 BadRequestError
 * with param "temperature", message str(exc) with its "(parameter=..., value=...)" suffix).
 * Only greedy decoding is served, but a value vLLM refuses is refused here too.
 */
function checkTemperature(t: unknown): void {
  if (t === undefined || t === null) return;
  if (typeof t !== 'number') throw new ApiError(400, `temperature must be a number, got ${JSON.stringify(t)}`, 'BadRequestError', 'temperature');
  const v = pyFloat(t);
  const fail = (what: string) => new ApiError(400, `temperature must be ${what}, got ${v}. (parameter=temperature, value=${v})`, 'BadRequestError', 'temperature');
  if (t < 0) throw fail('non-negative');
  if (t > 2) throw fail('in [0, 2]');
}

/** Python's repr of a float (shortest round-trip digits; exponent form outside 1e-4 <= |x| < 1e16). */
export function pyFloat(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant, expText] = x.toExponential().split('e');
  const exp = Number(expText);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  let out: string;
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      const int = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
      const frac = digits.slice(exp + 1);
      out = `${int}.${frac || '0'}`;
    } else out = `0.${'0'.repeat(-exp - 1)}${digits}`;
  } else {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    out = `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return (neg ? '-' : '') + out;
}

/** vLLM clamps -inf to -9999.0 so the JSON stays valid. */
function clampLp(x: number): number {
  return Number.isFinite(x) ? x : -9999;
}

/**
 * A dict that keeps insertion order in JSON, as Python's does: JS objects put integer-like
 * keys ('17354') first in numeric order, but vLLM lists the actual token first.
 */
export class OrderedDict<V> {
  private keys: string[] = [];
  private values = new Map<string, V>();
  has(k: string): boolean {
    return this.values.has(k);
  }
  set(k: string, v: V): void {
    if (!this.values.has(k)) this.keys.push(k);
    this.values.set(k, v);
  }
  toJSONText(): string {
    return `{${this.keys.map((k) => `${JSON.stringify(k)}:${toJsonText(this.values.get(k))}`).join(',')}}`;
  }
}

/** JSON.stringify that honours OrderedDict. */
export function toJsonText(v: unknown): string {
  if (v instanceof OrderedDict) return v.toJSONText();
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : toJsonText(x))).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const parts: string[] = [];
    for (const [k, x] of Object.entries(v)) if (x !== undefined) parts.push(`${JSON.stringify(k)}:${toJsonText(x)}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = body === null ? '' : toJsonText(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const tooLarge = () => new ApiError(413, `request body exceeds ${MAX_BODY_BYTES / 2 ** 20} MiB`, 'BadRequestError', null);
  // Over the limit, the rest of the body is read and dropped (never kept), so the client
  // gets the 413 instead of a reset connection in the middle of its upload.
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
    req.resume();
    throw tooLarge();
  }
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY_BYTES) return void chunks.push(c);
      req.off('data', onData);
      req.resume();
      chunks.length = 0;
      reject(tooLarge());
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
  try {
    const v = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw new ApiError(400, 'request body is not a JSON object');
  }
}
