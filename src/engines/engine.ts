/**
 * The narrow interface every task talks to, in the spirit of lm-evaluation-harness's LM:
 * requests are token ids, answers are log-probabilities. An engine knows nothing about
 * tasks; a task knows nothing about how an engine runs the model (in-process ONNX,
 * or a vLLM server over HTTP). The same checkpoint scored through two engines must give
 * the same numbers within the engines' precision.
 */

/** Score `continuation` given `context` (context must be non-empty: put BOS there). */
export interface LoglikelihoodRequest {
  context: readonly number[];
  continuation: readonly number[];
}

export interface LoglikelihoodResult {
  /** Sum of the continuation tokens' log-probabilities (natural log). */
  logprob: number;
  /** Whether every continuation token is the argmax at its position. */
  isGreedy: boolean;
  /** Per continuation token log-probabilities, in order. */
  tokenLogprobs: Float64Array;
}

/** Rolling loglikelihood of a whole document (lm-eval's `loglikelihood_rolling`). */
export interface RollingRequest {
  /** The document's tokens, without BOS; the engine conditions the first on `prefixToken`. */
  tokens: readonly number[];
}

export interface RollingResult {
  logprob: number;
  /** One log-probability per document token. */
  tokenLogprobs: Float64Array;
}

/** Next-token distributions at every position of a sequence (for KL divergence). */
export interface TopLogprobsRequest {
  tokens: readonly number[];
  /** How many of the most likely next tokens to return per position. */
  k: number;
}

export interface TopLogprobsResult {
  /** Number of positions = tokens.length - 1 (position i predicts tokens[i + 1]). */
  positions: number;
  k: number;
  /** positions × k token ids, most likely first. */
  ids: Int32Array;
  /** positions × k log-probabilities, matching `ids`. */
  logprobs: Float32Array;
  /** Log-probability of the actual next token at each position. */
  targetLogprobs: Float64Array;
}

export interface EngineInfo {
  /** Engine kind, e.g. "onnx" or "vllm". */
  engine: string;
  /** What is being served (checkpoint path or model name). */
  model: string;
  /** Longest token sequence the engine accepts in one forward pass. */
  maxLength: number;
  vocabSize: number;
  /** Token used to condition the first token of a document (BOS, else EOS). */
  prefixToken: number;
}

export interface Engine {
  readonly info: EngineInfo;
  loglikelihood(requests: readonly LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]>;
  loglikelihoodRolling(requests: readonly RollingRequest[]): Promise<RollingResult[]>;
  topLogprobs(requests: readonly TopLogprobsRequest[]): Promise<TopLogprobsResult[]>;
  /** Greedy continuation of `prompt` by `maxNewTokens` tokens (ids of the new tokens only). */
  generateGreedy(prompt: readonly number[], maxNewTokens: number): Promise<number[]>;
  close(): Promise<void>;
}
