/**
 * lm-evaluation-harness's rolling-window split for `loglikelihood_rolling`
 * (get_rolling_token_windows + make_disjoint_window with context_len = 1). Every document
 * token is predicted exactly once; the first is conditioned on the prefix token only.
 * Shared by every engine so that perplexities agree with lm-eval for the same window L.
 */

export interface RollingWindow {
  /** ctx + cont as lm-eval sends them: the model is fed tokens[0 .. n-2], token i+1 is the target at position i. */
  tokens: number[];
  /** How many leading entries of `tokens` are context only (at least 1). */
  contextLength: number;
  /** Index in the document of the first scored token. */
  scoredStart: number;
  /** How many document tokens this window scores (= tokens.length - contextLength). */
  scoredCount: number;
}

/**
 * Windows for a document of `tokens.length` tokens, window length `maxLength` (L: the
 * number of predicted tokens of a full window, and the number of tokens the model sees),
 * prefix token `prefixToken` (BOS, else EOS). No windows for an empty document.
 */
export function rollingWindows(tokens: readonly number[], maxLength: number, prefixToken: number): RollingWindow[] {
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new RangeError(`rolling window length must be a positive integer, got ${maxLength}`);
  const n = tokens.length;
  const L = maxLength;
  const windows: RollingWindow[] = [];
  if (n === 0) return windows;
  // First window: [P] + T[0 .. n1-2] predicts T[0 .. n1-1].
  const n1 = Math.min(L, n);
  windows.push({ tokens: [prefixToken, ...tokens.slice(0, n1)], contextLength: 1, scoredStart: 0, scoredCount: n1 });
  let done = n1;
  while (done < n) {
    const k = Math.min(n - done, L);
    const end = done + k;
    // The window T[end-L-1 .. end-2] is fed; the disjoint form keeps all but its last k-1
    // tokens as context, so the fed sequence plus the final target is T[end-L-1 .. end-1].
    const start = end - L - 1;
    windows.push({ tokens: tokens.slice(start, end), contextLength: L + 1 - k, scoredStart: end - k, scoredCount: k });
    done = end;
  }
  return windows;
}
