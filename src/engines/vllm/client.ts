/**
 * JSON over HTTP to an OpenAI-compatible server, with bounded retries of transient
 * failures (connection errors, 5xx, timeouts) and exponential backoff. 4xx are not
 * retried: they are our mistake or a limit, and the server's message says which.
 */
import { UserError } from '../../errors.ts';

export interface ClientOptions {
  baseUrl: string;
  /** Per-attempt timeout. */
  timeoutMs?: number;
  /** Extra attempts after the first. */
  retries?: number;
  /** First backoff; doubles each retry. */
  backoffMs?: number;
  /** Where the server's output goes, named in every error. */
  logPath?: string;
  /** Called before each attempt and after each failure: throw to stop (e.g. the server died). */
  checkAlive?: () => void;
}

export class HttpClient {
  private readonly o: Required<Omit<ClientOptions, 'logPath' | 'checkAlive'>> & Pick<ClientOptions, 'logPath' | 'checkAlive'>;
  /** Attempts that failed and were retried (for provenance and tests). */
  retried = 0;

  constructor(o: ClientOptions) {
    this.o = { ...o, timeoutMs: o.timeoutMs ?? 600_000, retries: o.retries ?? 3, backoffMs: o.backoffMs ?? 250 };
  }

  private where(): string {
    return this.o.logPath ? `; log: ${this.o.logPath}` : '';
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    const url = `${this.o.baseUrl}${path}`;
    const payload = JSON.stringify(body);
    let last = '';
    const attempts = this.o.retries + 1;
    for (let a = 0; a < attempts; a++) {
      this.o.checkAlive?.();
      if (a > 0) {
        this.retried++;
        await new Promise((r) => setTimeout(r, this.o.backoffMs * 2 ** (a - 1)));
        this.o.checkAlive?.();
      }
      let res: Response;
      try {
        res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload, signal: AbortSignal.timeout(this.o.timeoutMs) });
      } catch (e) {
        const err = e as Error & { cause?: { code?: string } };
        last = err.name === 'TimeoutError' ? `no answer within ${Math.round(this.o.timeoutMs / 1000)} s (server hung?)` : `${err.cause?.code ?? err.message}`;
        continue;
      }
      let text: string;
      try {
        text = await res.text();
      } catch (e) {
        last = `connection lost while reading the answer (${(e as Error).message})`;
        continue;
      }
      if (res.status >= 500) {
        last = `HTTP ${res.status}: ${errorMessage(text)}`;
        continue;
      }
      if (res.status >= 400) {
        throw new UserError(`server rejected ${path} with HTTP ${res.status}: ${errorMessage(text)}; fix the request limits (max_model_len, --max-logprobs) or the served name${this.where()}`);
      }
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new UserError(`server answered ${path} with invalid JSON (${text.slice(0, 80)}); is this an OpenAI-compatible server?${this.where()}`);
      }
    }
    this.o.checkAlive?.();
    throw new UserError(`server failed ${path} after ${attempts} attempts (${last}); check the server and its log${this.where()}`);
  }
}

/** The message of vLLM's error body, in its new (`error.message`) or old (`message`) shape. */
export function errorMessage(text: string): string {
  try {
    const j = JSON.parse(text);
    const m = j?.error?.message ?? j?.message ?? j?.detail;
    if (typeof m === 'string') return m.split('\n')[0].slice(0, 300);
  } catch {
    /* not JSON */
  }
  return text.split('\n')[0].slice(0, 300) || '(empty body)';
}
