/**
 * The tensors of a checkpoint directory, whether one `model.safetensors` or shards listed
 * in `model.safetensors.index.json`. Tensors are read lazily by name.
 */
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { UserError } from '../errors.ts';
import { DTYPE_BYTES } from './dtypes.ts';
import { isObject, printable, readJsonFile, show } from './json.ts';
import { SafetensorsFile, writeAtomic, writeSafetensors, type TensorInfo, type TensorToWrite } from './safetensors.ts';

const INDEX = 'model.safetensors.index.json';

export class CheckpointTensors {
  readonly dir: string;
  private files: SafetensorsFile[];
  private where = new Map<string, SafetensorsFile>();

  private constructor(dir: string, files: SafetensorsFile[]) {
    this.dir = dir;
    this.files = files;
    for (const f of files) {
      for (const name of f.tensors.keys()) {
        if (this.where.has(name)) {
          this.close();
          throw new UserError(printable(`${dir}: tensor '${name}' appears in more than one shard; re-download the checkpoint`, 600));
        }
        this.where.set(name, f);
      }
    }
  }

  static open(dir: string): CheckpointTensors {
    const st = statSync(dir, { throwIfNoEntry: false });
    if (!st) throw new UserError(`${dir}: checkpoint directory does not exist`);
    if (!st.isDirectory()) throw new UserError(`${dir}: is not a directory; pass the checkpoint directory (or inspect a single .safetensors file)`);
    const indexPath = join(dir, INDEX);
    if (existsSync(indexPath)) {
      const fix = 're-download the checkpoint';
      const index = readJsonFile(indexPath, fix);
      if (!isObject(index) || !isObject(index.weight_map)) throw new UserError(`${indexPath}: no weight_map object; ${fix}`);
      const weightMap = index.weight_map;
      for (const [name, shard] of Object.entries(weightMap)) {
        if (typeof shard !== 'string') throw new UserError(printable(`${indexPath}: weight_map['${name}'] is ${show(shard)}, expected a shard file name (a string); ${fix}`, 600));
      }
      const shardNames = [...new Set(Object.values(weightMap) as string[])].sort();
      const paths = new Map(shardNames.map((s) => [s, shardPath(dir, s, indexPath)]));
      const files: SafetensorsFile[] = [];
      try {
        for (const p of paths.values()) files.push(SafetensorsFile.open(p));
      } catch (e) {
        for (const f of files) f.close();
        throw e;
      }
      const ckpt = new CheckpointTensors(dir, files);
      for (const [name, shard] of Object.entries(weightMap) as [string, string][]) {
        if (ckpt.where.get(name)?.path !== paths.get(shard)) {
          ckpt.close();
          throw new UserError(printable(`${indexPath}: tensor '${name}' is listed in ${shard} but not found there; ${fix}`, 600));
        }
      }
      return ckpt;
    }
    const single = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
    if (single.length === 0) throw new UserError(`${dir}: no .safetensors files (expected model.safetensors or ${INDEX})`);
    const files: SafetensorsFile[] = [];
    try {
      for (const s of single) files.push(SafetensorsFile.open(join(dir, s)));
    } catch (e) {
      for (const f of files) f.close();
      throw e;
    }
    return new CheckpointTensors(dir, files);
  }

  names(): string[] {
    return [...this.where.keys()].sort();
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  info(name: string): TensorInfo {
    const f = this.where.get(name);
    if (!f) throw new UserError(`${this.dir}: checkpoint has no tensor '${name}'`);
    return f.info(name);
  }

  readBytes(name: string): Uint8Array {
    this.info(name);
    return this.where.get(name)!.readBytes(name);
  }

  readFloat32(name: string): Float32Array {
    this.info(name);
    return this.where.get(name)!.readFloat32(name);
  }

  close(): void {
    for (const f of this.files) f.close();
    this.files = [];
  }
}

/**
 * The path of a shard named in the index, confined to the checkpoint: no absolute paths,
 * no `..`, and no symlink that resolves outside the directory. The one exception is the
 * Hugging Face cache layout, where `snapshots/<rev>/x` links into the repo's `blobs/`.
 */
function shardPath(dir: string, shard: string, indexPath: string): string {
  const refuse = (why: string) => new UserError(printable(`${indexPath}: shard ${show(shard)} ${why}; a checkpoint's shards must be files inside its directory (re-download the checkpoint)`, 600));
  if (shard === '' || shard.includes('\0')) throw refuse('is not a file name');
  if (isAbsolute(shard) || /^[A-Za-z]:/.test(shard) || shard.startsWith('\\')) throw refuse('is an absolute path');
  if (shard.split(/[\\/]/).includes('..')) throw refuse("uses '..' to leave the checkpoint directory");
  const p = join(dir, shard);
  let real: string;
  try {
    real = realpathSync(p);
  } catch (e) {
    throw new UserError(`${indexPath}: shard ${show(shard)} does not exist (${(e as NodeJS.ErrnoException).code}); re-download the checkpoint`, 2, { cause: e });
  }
  const roots = [realpathSync(dir)];
  const abs = resolve(dir);
  if (basename(dirname(abs)) === 'snapshots') {
    const blobs = join(dirname(dirname(abs)), 'blobs');
    if (existsSync(blobs)) roots.push(realpathSync(blobs));
  }
  if (!roots.some((r) => real.startsWith(r + sep))) throw refuse(`resolves to ${printable(real)}, outside the checkpoint directory`);
  return p;
}

/**
 * Write tensors as one `model.safetensors`, or as `model-0000i-of-0000n.safetensors`
 * shards plus an index when they exceed `maxShardBytes`.
 */
export function writeCheckpointTensors(
  dir: string,
  tensors: readonly TensorToWrite[],
  options: { maxShardBytes?: number; metadata?: Record<string, string> } = {},
): void {
  const max = options.maxShardBytes ?? 5 * 2 ** 30;
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const shards: TensorToWrite[][] = [[]];
  let size = 0;
  for (const t of sorted) {
    if (size > 0 && size + t.data.byteLength > max) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(t);
    size += t.data.byteLength;
  }
  if (shards.length === 1) {
    writeSafetensors(join(dir, 'model.safetensors'), sorted, options.metadata);
    return;
  }
  const n = shards.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  let total = 0;
  shards.forEach((shard, i) => {
    const file = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    writeSafetensors(join(dir, file), shard, options.metadata);
    for (const t of shard) {
      weightMap[t.name] = file;
      total += t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    }
  });
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  writeAtomic(join(dir, INDEX), [Buffer.from(JSON.stringify(index, null, 2) + '\n')]);
}
