/** Flag parsing and progress display shared by the commands. */
import { UserError } from '../errors.ts';

/** Comma-separated list flag. */
export function list(v: string): string[] {
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

/** Integer flag >= min (default 1), with a one-line error naming the flag. */
export function positiveInt(flag: string, v: string, min = 1): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UserError(`${flag} must be an integer >= ${min}, got '${v}'`);
  return n;
}

/**
 * Progress on a stream (stderr): on a terminal one line updated in place, elsewhere
 * plain lines (updates are throttled so logs stay readable).
 */
export function progressLine(stream: NodeJS.WriteStream) {
  const tty = stream.isTTY === true;
  let shown = false;
  let lastPlain = 0;
  const clear = () => {
    if (tty && shown) stream.write('\r\x1b[2K');
    shown = false;
  };
  return {
    /** A transient status (replaced by the next one). */
    update(text: string) {
      if (tty) {
        clear();
        const width = stream.columns ?? 120;
        stream.write(text.length > width - 1 ? text.slice(0, width - 2) + '…' : text);
        shown = true;
      } else if (Date.now() - lastPlain > 5000) {
        stream.write(text + '\n');
        lastPlain = Date.now();
      }
    },
    /** A permanent line. */
    line(text: string) {
      clear();
      stream.write(text + '\n');
    },
    done() {
      clear();
    },
  };
}
