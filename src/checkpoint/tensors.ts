/**
 * The tensors of a checkpoint directory, whether one `model.safetensors` or shards listed
 * in `model.safetensors.index.json`. Tensors are read lazily by name.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.ts';
import { DTYPE_BYTES } from './dtypes.ts';
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
        if (this.where.has(name)) throw new UserError(`${dir}: tensor '${name}' appears in more than one shard`);
        this.where.set(name, f);
      }
    }
  }

  static open(dir: string): CheckpointTensors {
    const indexPath = join(dir, INDEX);
    if (existsSync(indexPath)) {
      let weightMap: Record<string, string>;
      try {
        weightMap = JSON.parse(readFileSync(indexPath, 'utf8')).weight_map;
      } catch {
        throw new UserError(`${indexPath}: not valid JSON; re-download the checkpoint`);
      }
      if (typeof weightMap !== 'object' || weightMap === null) throw new UserError(`${indexPath}: no weight_map object`);
      const shardNames = [...new Set(Object.values(weightMap))].sort();
      const files = shardNames.map((s) => SafetensorsFile.open(join(dir, s)));
      const ckpt = new CheckpointTensors(dir, files);
      for (const [name, shard] of Object.entries(weightMap)) {
        if (ckpt.where.get(name)?.path !== join(dir, shard)) {
          ckpt.close();
          throw new UserError(`${indexPath}: tensor '${name}' is listed in ${shard} but not found there`);
        }
      }
      return ckpt;
    }
    if (!existsSync(dir)) throw new UserError(`${dir}: checkpoint directory does not exist`);
    const single = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
    if (single.length === 0) throw new UserError(`${dir}: no .safetensors files (expected model.safetensors or ${INDEX})`);
    return new CheckpointTensors(dir, single.map((s) => SafetensorsFile.open(join(dir, s))));
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
