/**
 * The job cache, keyed by job identity:
 *   <cache>/ckpt/<id>/       quantized checkpoints      (directory outputs)
 *   <cache>/base/<id>/       base distributions (kld)   (directory outputs)
 *   <cache>/results/<id>.json  evaluation results
 * A directory output is written into `<kind>/.tmp-<id>-<pid>-<rand>/`, its files fsynced,
 * a marker `COMPLETE.json` (the manifest: every file with size and sha256) written last,
 * and the directory renamed into place. A directory without its marker, or whose files
 * do not match the manifest's sizes, is never used. Temp directories of dead processes
 * are removed on open.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { writeAtomic } from '../checkpoint/safetensors.ts';
import { hashFile, listFiles } from '../matrix/identity.ts';
import type { MetricValue } from '../results/record.ts';

export const MARKER = 'COMPLETE.json';

export type DirKind = 'ckpt' | 'base';

export interface DirManifest<T = unknown> {
  jobId: string;
  files: Record<string, { size: number; sha256: string }>;
  /** What the handler returned (quantizer report, base summary). */
  result: T;
  seconds: number;
  peakMemoryMB: number | null;
  run: string;
  createdAt: string;
}

export interface CachedResult {
  jobId: string;
  metrics: MetricValue[];
  provenance: Record<string, unknown>;
  seconds: number;
  peakMemoryMB: number | null;
  run: string;
  createdAt: string;
}

export function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class Cache {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    for (const k of ['ckpt', 'base', 'results']) mkdirSync(join(dir, k), { recursive: true });
  }

  /** Remove temp dirs and temp files left by processes that are gone (e.g. killed). */
  cleanStale(): string[] {
    const removed: string[] = [];
    for (const k of ['ckpt', 'base']) {
      for (const name of readdirSync(join(this.dir, k))) {
        const m = /^\.tmp-[0-9a-f]+-(\d+)-[0-9a-f]+$/.exec(name);
        // Our own pid here is a stale leftover of an earlier process that had the same pid.
        if (m && (Number(m[1]) === process.pid || !isAlive(Number(m[1])))) {
          rmSync(join(this.dir, k, name), { recursive: true, force: true });
          removed.push(join(k, name));
        }
      }
    }
    for (const name of readdirSync(join(this.dir, 'results'))) {
      const m = /\.tmp-(\d+)$/.exec(name);
      if (m && (Number(m[1]) === process.pid || !isAlive(Number(m[1])))) {
        rmSync(join(this.dir, 'results', name), { force: true });
        removed.push(join('results', name));
      }
    }
    return removed;
  }

  dirPath(kind: DirKind, id: string): string {
    return join(this.dir, kind, id);
  }

  /** The manifest of a complete directory output, or null if there is none. */
  readDir<T = unknown>(kind: DirKind, id: string): DirManifest<T> | null {
    const dir = this.dirPath(kind, id);
    const marker = join(dir, MARKER);
    if (!existsSync(marker)) return null;
    let m: DirManifest<T>;
    try {
      m = JSON.parse(readFileSync(marker, 'utf8'));
    } catch {
      return null;
    }
    if (m.jobId !== id) return null;
    for (const [f, info] of Object.entries(m.files)) {
      try {
        if (statSync(join(dir, f)).size !== info.size) return null;
      } catch {
        return null;
      }
    }
    return m;
  }

  /**
   * Produce a directory output: `write(tmpDir)` fills a fresh temp dir; on success the
   * files are fsynced, the manifest is written last, and the dir is renamed into place.
   * A directory without a valid marker at the target (left by hand, or by an older
   * layout) is replaced. On failure the temp dir is removed.
   */
  async produceDir<T>(
    kind: DirKind,
    id: string,
    run: string,
    write: (tmpDir: string) => Promise<{ result: T; seconds: number; peakMemoryMB: number | null }>,
  ): Promise<DirManifest<T>> {
    const tmp = join(this.dir, kind, `.tmp-${id.slice(0, 16)}-${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(tmp);
    try {
      const out = await write(tmp);
      const files: DirManifest['files'] = {};
      for (const f of listFiles(tmp)) {
        if (f === MARKER) throw new Error(`a ${kind} handler must not write ${MARKER}`);
        const p = join(tmp, f);
        fsyncPath(p);
        files[f] = { size: statSync(p).size, sha256: hashFile(p) };
      }
      if (Object.keys(files).length === 0) throw new Error(`the ${kind} handler wrote no files into its output dir`);
      const manifest: DirManifest<T> = {
        jobId: id, files, result: out.result, seconds: out.seconds, peakMemoryMB: out.peakMemoryMB, run, createdAt: new Date().toISOString(),
      };
      writeAtomic(join(tmp, MARKER), [Buffer.from(JSON.stringify(manifest, null, 1) + '\n')]);
      fsyncPath(tmp);
      const target = this.dirPath(kind, id);
      if (existsSync(target)) {
        if (this.readDir(kind, id)) {
          // Another process finished the same job first; identical identity, so keep theirs.
          rmSync(tmp, { recursive: true, force: true });
          return this.readDir<T>(kind, id)!;
        }
        rmSync(target, { recursive: true, force: true });
      }
      renameSync(tmp, target);
      fsyncPath(join(this.dir, kind));
      return manifest;
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  resultPath(id: string): string {
    return join(this.dir, 'results', `${id}.json`);
  }

  readResult(id: string): CachedResult | null {
    const p = this.resultPath(id);
    if (!existsSync(p)) return null;
    try {
      const r = JSON.parse(readFileSync(p, 'utf8')) as CachedResult;
      return r.jobId === id && Array.isArray(r.metrics) ? r : null;
    } catch {
      return null;
    }
  }

  writeResult(r: CachedResult): void {
    writeAtomic(this.resultPath(r.jobId), [Buffer.from(JSON.stringify(r) + '\n')]);
    fsyncPath(join(this.dir, 'results'));
  }
}
