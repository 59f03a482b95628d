/**
 * Errors a user can fix (bad flags, bad files, unknown names). The CLI prints their
 * message as one line and exits with `exitCode` (2 = usage or input error), with no
 * stack trace. Anything else is a bug and keeps its stack.
 */
export class UserError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UserError';
    this.exitCode = exitCode;
  }
}

/** Closest names by edit distance, for "did you mean" hints. */
export function didYouMean(name: string, known: readonly string[]): string {
  const scored = known
    .map((k) => ({ k, d: editDistance(name.toLowerCase(), k.toLowerCase()) }))
    .sort((a, b) => a.d - b.d || a.k.localeCompare(b.k));
  const best = scored.filter((s) => s.d <= Math.max(2, Math.floor(name.length / 3))).slice(0, 3);
  return best.length ? `did you mean ${best.map((s) => `'${s.k}'`).join(' or ')}?` : `known: ${known.join(', ')}`;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/**
 * A tool or server we run failed (a Python tool, `vllm serve`, lm_eval, a tool environment
 * that cannot be built): not the user's input, not our bug. The CLI prints the message as
 * one line (the tool's own log path is in it) and exits with 3.
 */
export class ToolError extends Error {
  readonly exitCode: number;
  constructor(message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ToolError';
    this.exitCode = options?.exitCode ?? 3;
  }
}
