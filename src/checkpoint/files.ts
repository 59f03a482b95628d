/**
 * Opening the files of a checkpoint. Only regular files are read: a FIFO would block the
 * open (or the read) forever, a directory or a device gives nonsense. The open itself
 * uses O_NONBLOCK so that it cannot hang on a FIFO, and the check is on the opened
 * descriptor (fstat), so nothing can be swapped in between the check and the read.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { UserError } from '../errors.ts';

function kindOf(st: import('node:fs').Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** Open `path` for reading if it is a regular file; returns the descriptor and the size. */
export function openRegularFile(path: string, what: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new UserError(`${path}: cannot open ${what} (${(e as NodeJS.ErrnoException).code ?? e})`, 2, { cause: e });
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new UserError(`${path}: is ${kindOf(st)}, expected ${what}; pass the file itself (or the checkpoint directory)`);
  }
  return { fd, size: st.size };
}

/** Read `len` bytes at `pos` completely; a short read means the file shrank under us. */
export function readFully(fd: number, out: Uint8Array, pos: number, path: string): void {
  let done = 0;
  while (done < out.length) {
    const n = readSync(fd, out, done, out.length - done, pos + done);
    if (n === 0) throw new UserError(`${path}: file ended early (was it truncated while reading?)`);
    done += n;
  }
}

/** The whole content of a regular file. */
export function readRegularFile(path: string, what: string): Buffer {
  const { fd, size } = openRegularFile(path, what);
  try {
    const buf = Buffer.alloc(size);
    readFully(fd, buf, 0, path);
    return buf;
  } finally {
    closeSync(fd);
  }
}
