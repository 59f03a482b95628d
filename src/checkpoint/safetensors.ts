/**
 * safetensors files: an 8-byte little-endian header length, a JSON header mapping tensor
 * names to {dtype, shape, data_offsets}, then the raw bytes. The reader validates the
 * whole header up front and reads each tensor by offset, so multi-GB files are never
 * loaded whole. The writer is deterministic (sorted names, contiguous data) and atomic
 * (write to a temporary file, fsync, rename).
 */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { UserError } from '../errors.ts';
import { DTYPE_BYTES, isDType, toFloat32, type DType } from './dtypes.ts';
import { openRegularFile, readFully } from './files.ts';
import { findJsonProblem, isObject, oneLine, printable, show } from './json.ts';

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte offsets in the file, [begin, end). */
  begin: number;
  end: number;
}

/** Largest header we accept; the format itself caps it at 100 MB. */
const MAX_HEADER = 100_000_000;

export class SafetensorsFile {
  readonly path: string;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  private fd: number;

  private constructor(path: string, fd: number, tensors: Map<string, TensorInfo>, metadata: Record<string, string>) {
    this.path = path;
    this.fd = fd;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /** Open and validate a file; throws UserError naming the file and the problem. */
  static open(path: string): SafetensorsFile {
    const { fd, size } = openRegularFile(path, 'a safetensors file');
    try {
      const { tensors, metadata } = parseHeader(path, fd, size);
      return new SafetensorsFile(path, fd, tensors, metadata);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new UserError(`${this.path}: no tensor named '${name}'`);
    return t;
  }

  /** The tensor's raw little-endian bytes. */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    const out = new Uint8Array(t.end - t.begin);
    try {
      readFully(this.fd, out, t.begin, this.path);
    } catch (e) {
      throw new UserError(`${this.path}: file ended inside tensor '${name}' (was it truncated while reading?)`, 2, { cause: e });
    }
    return out;
  }

  /** The tensor decoded to float32 (integers converted by value). */
  readFloat32(name: string): Float32Array {
    return toFloat32(this.readBytes(name), this.info(name).dtype);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

function parseHeader(path: string, fd: number, size: number) {
  const bad = (problem: string) => new UserError(printable(`${path}: invalid safetensors header: ${problem}; re-download or re-export the file`, 600));
  if (size < 8) throw bad(`file is ${size} bytes, shorter than the 8-byte header length (truncated file)`);
  const lenBuf = Buffer.alloc(8);
  readFully(fd, lenBuf, 0, path);
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(size - 8)) throw bad(`header length ${headerLen} runs past the end of the file (${size} bytes)`);
  if (headerLen > BigInt(MAX_HEADER)) throw bad(`header length ${headerLen} exceeds ${MAX_HEADER} bytes`);
  const n = Number(headerLen);
  const buf = Buffer.alloc(n);
  readFully(fd, buf, 8, path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw bad('header is not valid UTF-8 JSON');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new UserError(printable(`${path}: invalid safetensors header: header is not valid UTF-8 JSON (${oneLine((e as Error).message)}); re-download or re-export the file`, 600), 2, { cause: e });
  }
  const problem = findJsonProblem(text);
  if (problem) throw bad(`${problem.problem} at ${problem.path}${problem.problem.startsWith('duplicate') ? ' (each tensor and field may be listed only once)' : ''}`);
  if (!isObject(header)) throw bad('header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = size - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!isObject(raw)) throw bad('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw)) if (typeof v !== 'string') throw bad(`__metadata__ value '${k}' is ${show(v)}, not a string`);
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isObject(e)) throw bad(`entry '${name}' is not an object`);
    if (typeof e.dtype !== 'string' || !isDType(e.dtype)) throw bad(`tensor '${name}' has unknown dtype ${show(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw bad(`tensor '${name}' has an invalid shape ${show(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[1] < off[0])
      throw bad(`tensor '${name}' has invalid data_offsets ${show(off)}`);
    const shape = e.shape as number[];
    const expected = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[e.dtype];
    if (off[1] - off[0] !== expected)
      throw bad(`tensor '${name}' spans ${off[1] - off[0]} bytes but shape [${shape}] of ${e.dtype} needs ${expected}`);
    if (off[1] > dataLen) throw bad(`tensor '${name}' ends at data offset ${off[1]}, past the end of the file's ${dataLen} data bytes (truncated file?)`);
    tensors.set(name, { name, dtype: e.dtype, shape, begin: dataStart + off[0], end: dataStart + off[1] });
  }
  // As the reference implementation requires: the data is covered exactly, in order, with
  // no gaps and no overlaps, so every byte belongs to exactly one tensor.
  const spans = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = dataStart;
  for (let i = 0; i < spans.length; i++) {
    const t = spans[i];
    if (t.begin < pos) throw bad(`tensors '${spans[i - 1].name}' and '${t.name}' overlap`);
    if (t.begin > pos) throw bad(`bytes ${pos - dataStart}..${t.begin - dataStart} of the data belong to no tensor (a hole before '${t.name}')`);
    pos = t.end;
  }
  if (pos !== size) throw bad(`the data has ${size - pos} bytes after the last tensor (header and data disagree)`);
  return { tensors, metadata };
}

export interface TensorToWrite {
  name: string;
  dtype: DType;
  shape: readonly number[];
  /** Raw little-endian bytes of the tensor (see dtypes.ts `fromFloat32`). */
  data: Uint8Array;
}

/**
 * Write a safetensors file atomically. Tensors are laid out in name order, the header is
 * padded with spaces to a multiple of 8 bytes, so the same tensors give the same bytes.
 */
export function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): void {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = sortKeys(metadata);
  let offset = 0;
  for (const t of sorted) {
    const need = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (need !== t.data.byteLength) throw new Error(`tensor ${t.name}: ${t.data.byteLength} bytes for shape [${t.shape}] ${t.dtype} (needs ${need})`);
    if (t.name in header) throw new Error(`duplicate tensor name ${t.name}`);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + need] };
    offset += need;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json);
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeAtomic(path, [head, Buffer.from(json), ...sorted.map((t) => t.data)]);
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Write chunks to `path` via a temporary file, fsync, then rename over the target. */
export function writeAtomic(path: string, chunks: readonly Uint8Array[]): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    for (const c of chunks) {
      let done = 0;
      while (done < c.byteLength) done += writeSync(fd, c, done, c.byteLength - done);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
