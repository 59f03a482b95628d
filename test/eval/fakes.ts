/**
 * Test doubles for eval tests: a character tokenizer and a bigram "model" whose next-token
 * log-probs are a closed-form function of the previous token, so expected values can be
 * computed directly in each test without going through the code under test.
 */
import type { TextTokenizer } from '../../src/checkpoint/tokenizer.ts';
import type {
  Engine,
  EngineInfo,
  LoglikelihoodRequest,
  LoglikelihoodResult,
  RollingRequest,
  RollingResult,
  TopLogprobsRequest,
  TopLogprobsResult,
} from '../../src/engines/engine.ts';

export const BOS = 1;
export const EOS = 2;
/** Printable ASCII 32..126 map to ids 3..97. */
export const VOCAB = 98;

export function charTokenizer(addBosDefault = true): TextTokenizer {
  return {
    encode(text, opts) {
      const ids: number[] = [];
      if (opts?.addBos ?? addBosDefault) ids.push(BOS);
      for (const ch of text) {
        const c = ch.codePointAt(0)!;
        if (c < 32 || c > 126) ids.push(3 + 0); // anything else (newline, non-ASCII) maps to the space id
        else ids.push(3 + c - 32);
      }
      return ids;
    },
    decode(ids) {
      return ids.filter((i) => i >= 3).map((i) => String.fromCharCode(i - 3 + 32)).join('');
    },
    bosId: BOS,
    eosId: EOS,
    vocabSize: VOCAB,
    addBosDefault,
  };
}

/** log P(next = v | prev) of the bigram model with logits z_v = scale * sin(prev * 7 + v * 3 + shift). */
export function bigramRow(prev: number, scale = 2, shift = 0): Float64Array {
  const z = new Float64Array(VOCAB);
  let max = -Infinity;
  for (let v = 0; v < VOCAB; v++) {
    z[v] = scale * Math.sin(prev * 7 + v * 3 + shift);
    max = Math.max(max, z[v]);
  }
  let s = 0;
  for (let v = 0; v < VOCAB; v++) s += Math.exp(z[v] - max);
  const lse = max + Math.log(s);
  for (let v = 0; v < VOCAB; v++) z[v] -= lse;
  return z;
}

export class BigramEngine implements Engine {
  readonly info: EngineInfo;
  calls = { loglikelihood: 0, rolling: 0, top: 0 };
  constructor(
    readonly scale = 2,
    readonly shift = 0,
    maxLength = 64,
  ) {
    this.info = { engine: 'fake', model: `bigram(${scale},${shift})`, maxLength, vocabSize: VOCAB, prefixToken: BOS };
  }
  row(prev: number): Float64Array {
    return bigramRow(prev, this.scale, this.shift);
  }
  async loglikelihood(requests: readonly LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]> {
    this.calls.loglikelihood++;
    return requests.map((r) => {
      const seq = [...r.context, ...r.continuation];
      const n = r.continuation.length;
      const tokenLogprobs = new Float64Array(n);
      let greedy = true;
      for (let j = 0; j < n; j++) {
        const pos = r.context.length + j;
        const row = this.row(seq[pos - 1]);
        tokenLogprobs[j] = row[seq[pos]];
        let am = 0;
        for (let v = 1; v < VOCAB; v++) if (row[v] > row[am]) am = v;
        if (am !== seq[pos]) greedy = false;
      }
      return { logprob: tokenLogprobs.reduce((a, b) => a + b, 0), isGreedy: greedy, tokenLogprobs };
    });
  }
  /** For a bigram model the rolling windows do not matter: each token depends on its predecessor only. */
  async loglikelihoodRolling(requests: readonly RollingRequest[]): Promise<RollingResult[]> {
    this.calls.rolling++;
    return requests.map((r) => {
      const tokenLogprobs = new Float64Array(r.tokens.length);
      let prev = this.info.prefixToken;
      r.tokens.forEach((t, i) => {
        tokenLogprobs[i] = this.row(prev)[t];
        prev = t;
      });
      return { logprob: tokenLogprobs.reduce((a, b) => a + b, 0), tokenLogprobs };
    });
  }
  async topLogprobs(requests: readonly TopLogprobsRequest[]): Promise<TopLogprobsResult[]> {
    this.calls.top++;
    return requests.map((r) => {
      const P = r.tokens.length - 1;
      const ids = new Int32Array(P * r.k);
      const logprobs = new Float32Array(P * r.k);
      const targetLogprobs = new Float64Array(P);
      for (let p = 0; p < P; p++) {
        const row = this.row(r.tokens[p]);
        const order = Array.from({ length: VOCAB }, (_, v) => v).sort((a, b) => row[b] - row[a] || a - b);
        for (let j = 0; j < r.k; j++) {
          ids[p * r.k + j] = order[j];
          logprobs[p * r.k + j] = row[order[j]];
        }
        targetLogprobs[p] = row[r.tokens[p + 1]];
      }
      return { positions: P, k: r.k, ids, logprobs, targetLogprobs };
    });
  }
  async generateGreedy(): Promise<number[]> {
    throw new Error('not used');
  }
  async close(): Promise<void> {}
}
