/**
 * Strict JSON for every file a checkpoint or the model matrix is read from (safetensors
 * headers, config.json, model.safetensors.index.json, models.json). RFC 8259 leaves
 * duplicate object keys undefined; JSON.parse keeps the last one, Python's json keeps the
 * last one too, and a reader that resolves them differently from the writer's intent can
 * be made to load other data (a duplicated safetensors entry once let a NaN tensor
 * through). So a duplicate key anywhere is refused, naming the key, where it is and the
 * file. Numbers that overflow a double (1e400 -> Infinity) are refused as well: nothing
 * we read may be non-finite.
 */
import { UserError } from '../errors.ts';
import { readRegularFile } from './files.ts';

/** A problem found in valid JSON text: a repeated key or an out-of-range number, with its JSON path. */
export interface JsonProblem {
  problem: string;
  path: string;
}

/** Collapse an engine message to one short line (V8 quotes the input, newlines included). */
export function oneLine(s: string, max = 160): string {
  const t = printable(s.replace(/\s+/g, ' ').trim(), Infinity);
  return t.length > max ? `${t.slice(0, max - 3)}...` : t;
}

/** A user-controlled string made safe for a one-line message: control and line-break characters escaped, length capped. */
export function printable(s: string, max = 200): string {
  const t = s.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return t.length > max ? `${t.slice(0, max - 3)}...` : t;
}

/** A JSON value shown in a message: compact, capped, one line. */
export function show(v: unknown, max = 80): string {
  let t: string;
  try {
    t = JSON.stringify(v) ?? String(v);
  } catch {
    t = String(v);
  }
  return printable(t, max);
}

function pathOf(stack: readonly Frame[]): string {
  let p = '$';
  for (const f of stack) {
    if (f.label === null) continue;
    if (typeof f.label === 'number') p += `[${f.label}]`;
    else p += /^[A-Za-z_][A-Za-z0-9_]*$/.test(f.label) ? `.${f.label}` : `[${JSON.stringify(f.label)}]`;
  }
  return printable(p);
}

interface Frame {
  keys: Set<string> | null; // null for arrays
  label: string | number | null;
}

const isNumberStart = (c: number) => c === 0x2d || (c >= 0x30 && c <= 0x39);
const isNumberChar = (c: number) => isNumberStart(c) || c === 0x2b || c === 0x2e || c === 0x45 || c === 0x65;

/**
 * Scan text that JSON.parse accepted for duplicate keys and numbers that are not finite
 * doubles. One pass, no recursion (nesting depth is not limited by the call stack).
 */
export function findJsonProblem(text: string): JsonProblem | null {
  const stack: Frame[] = [];
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      let escaped = false;
      for (;;) {
        const d = text.charCodeAt(j);
        if (d === 0x5c) {
          escaped = true;
          j += 2;
        } else if (d === 0x22) break;
        else j++;
      }
      if (expectKey) {
        const top = stack[stack.length - 1];
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (top.keys!.has(key)) {
          top.label = null;
          return { problem: `duplicate key ${show(key)}`, path: pathOf(stack) };
        }
        top.keys!.add(key);
        top.label = key;
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b) {
      stack.push({ keys: new Set(), label: null });
      expectKey = true;
    } else if (c === 0x5b) {
      stack.push({ keys: null, label: 0 });
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c) {
      const top = stack[stack.length - 1];
      if (top.keys) expectKey = true;
      else (top.label as number)++;
    } else if (isNumberStart(c)) {
      let j = i + 1;
      while (j < n && isNumberChar(text.charCodeAt(j))) j++;
      const tok = text.slice(i, j);
      if (!Number.isFinite(Number(tok))) return { problem: `number ${printable(tok, 40)} is out of range (not a finite double)`, path: pathOf(stack) };
      i = j - 1;
    }
  }
  return null;
}

/**
 * Parse JSON text strictly. Throws a one-line UserError `${where}: ...; ${fix}` for bad
 * syntax, a duplicate key or an out-of-range number.
 */
export function parseJson(text: string, where: string, fix = 'fix the file'): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${printable(where, 400)}: not valid JSON (${oneLine((e as Error).message)}); ${fix}`, 2, { cause: e });
  }
  const p = findJsonProblem(text);
  if (p) throw new UserError(`${printable(where, 400)}: ${p.problem} at ${p.path} (${p.problem.startsWith('duplicate') ? 'each key may appear only once' : 'numbers must be finite'}); ${fix}`);
  return value;
}

/** parseJson for files whose top level must be an object (config.json, indexes, models.json). */
export function parseJsonObject(text: string, where: string, fix = 'fix the file'): Record<string, unknown> {
  const v = parseJson(text, where, fix);
  if (!isObject(v)) throw new UserError(`${printable(where, 400)}: the top level is ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}, expected a JSON object; ${fix}`);
  return v;
}

/** Bytes to text, refusing invalid UTF-8 (a silent U+FFFD could change a key or a name). */
export function decodeUtf8(bytes: Uint8Array, where: string, fix = 'fix the file'): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch (e) {
    throw new UserError(`${where}: not valid UTF-8; ${fix}`, 2, { cause: e });
  }
}

/** Read and strictly parse a JSON file whose top level is an object; unreadable files are a UserError too. */
export function readJsonFile(path: string, fix = 'fix the file'): Record<string, unknown> {
  return parseJsonObject(decodeUtf8(readRegularFile(path, 'a JSON file'), path, fix), path, fix);
}

/** True for a plain JSON object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
