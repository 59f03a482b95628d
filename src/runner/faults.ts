/**
 * Test-only fault injection, so CI can prove that `bench regress` catches a real drop:
 * multiply every `weight_scale` of a written compressed-tensors checkpoint by a factor.
 * Only float-typed scales (F32/F16/BF16) can be scaled exactly; other formats refuse.
 */
import { CheckpointTensors, writeCheckpointTensors } from '../checkpoint/tensors.ts';
import { fromFloat32 } from '../checkpoint/dtypes.ts';
import type { TensorToWrite } from '../checkpoint/safetensors.ts';
import { UserError } from '../errors.ts';

export function perturbWeightScales(dir: string, factor: number): number {
  const ckpt = CheckpointTensors.open(dir);
  const out: TensorToWrite[] = [];
  let touched = 0;
  try {
    for (const name of ckpt.names()) {
      const info = ckpt.info(name);
      let data = ckpt.readBytes(name);
      if (name.endsWith('.weight_scale')) {
        if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16')
          throw new UserError(`fault hook: ${name} has ${info.dtype} scales; perturb an integer scheme (F16/BF16 scales) instead`);
        data = fromFloat32(ckpt.readFloat32(name).map((v) => v * factor), info.dtype);
        touched++;
      }
      out.push({ name, dtype: info.dtype, shape: info.shape, data });
    }
  } finally {
    ckpt.close();
  }
  if (touched === 0) throw new UserError(`fault hook: ${dir} has no weight_scale tensors to perturb`);
  writeCheckpointTensors(dir, out);
  return touched;
}
