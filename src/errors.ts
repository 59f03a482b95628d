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

/** Exit codes of the CLI: 0 ok, 1 a job of a run failed, 2 usage or input error, 3 a tool or server failed. */
export const EXIT_CODES_HELP = 'exit codes: 0 ok; 1 a job of the run failed (see its failure record); 2 usage or input error; 3 a tool or server failed (its log path is in the message)';

/** How a job failed, as the run's failure record keeps it. */
export interface FailureInfo {
  error: string;
  /** user: bad input (exit 2); tool: a tool or server failed (exit 3); bug: anything else (its stack kept). */
  kind: 'user' | 'tool' | 'bug';
  exitCode: number;
  /** The stack of an unexpected error, so a TypeError in a handler can be traced. */
  stack?: string;
  /** Messages of the `cause` chain, outermost first. */
  causes?: string[];
}

export function describeFailure(e: unknown): FailureInfo {
  if (!(e instanceof Error)) return { error: String(e), kind: 'bug', exitCode: 1 };
  const causes: string[] = [];
  for (let c = e.cause, depth = 0; c !== undefined && depth < 8; c = c instanceof Error ? c.cause : undefined, depth++) causes.push(c instanceof Error ? `${c.name}: ${c.message}` : String(c));
  const kind = e instanceof ToolError ? 'tool' : e instanceof UserError ? 'user' : 'bug';
  const exitCode = e instanceof ToolError || e instanceof UserError ? e.exitCode : 1;
  return { error: e.message, kind, exitCode, ...(kind === 'bug' && e.stack ? { stack: e.stack } : {}), ...(causes.length ? { causes } : {}) };
}
