/**
 * A small ONNX graph builder: ops return the names of their outputs, constants are
 * deduplicated initializers, and `build()` encodes a ModelProto (opset 18, IR 8).
 */
import { DT, encodeModel, type AttrValue, type DataTypeCode, type NodeSpec, type TensorValue, type ValueInfoSpec } from './proto.ts';

export const OPSET = 18;
const IR_VERSION = 8;

const bytesOf = (a: Float32Array | BigInt64Array | Int32Array | Uint8Array): Uint8Array =>
  new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export class GraphBuilder {
  private nodes: NodeSpec[] = [];
  private inits: TensorValue[] = [];
  private inputs: ValueInfoSpec[] = [];
  private outputs: ValueInfoSpec[] = [];
  private names = new Set<string>();
  private constCache = new Map<string, string>();
  private counter = 0;

  private fresh(hint: string): string {
    let name = hint;
    while (this.names.has(name)) name = `${hint}_${++this.counter}`;
    this.names.add(name);
    return name;
  }

  input(name: string, dataType: DataTypeCode, dims: (number | string)[]): string {
    this.names.add(name);
    this.inputs.push({ name, dataType, dims });
    return name;
  }

  /** Declare `value` (an existing tensor) a graph output under `name`. */
  output(name: string, value: string, dataType: DataTypeCode, dims: (number | string)[]): void {
    if (value !== name) this.op('Identity', [value], {}, name);
    this.outputs.push({ name, dataType, dims });
  }

  /** A float32 initializer (weights). */
  weight(name: string, dims: number[], data: Float32Array): string {
    if (data.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`initializer ${name}: ${data.length} values for shape [${dims}]`);
    const n = this.fresh(name);
    this.inits.push({ name: n, dataType: DT.FLOAT, dims, raw: bytesOf(data) });
    return n;
  }

  /** A raw initializer of any element type (e.g. packed uint8 weights). */
  tensor(name: string, dataType: DataTypeCode, dims: number[], raw: Uint8Array): string {
    const n = this.fresh(name);
    this.inits.push({ name: n, dataType, dims, raw });
    return n;
  }

  constF(values: number | readonly number[], dims?: number[]): string {
    const arr = typeof values === 'number' ? [values] : values;
    const d = dims ?? (typeof values === 'number' ? [] : [arr.length]);
    const key = `f:${d.join('x')}:${arr.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const n = this.fresh('cf');
    this.inits.push({ name: n, dataType: DT.FLOAT, dims: d, raw: bytesOf(Float32Array.from(arr)) });
    this.constCache.set(key, n);
    return n;
  }

  constI64(values: number | readonly number[], dims?: number[]): string {
    const arr = typeof values === 'number' ? [values] : values;
    const d = dims ?? (typeof values === 'number' ? [] : [arr.length]);
    const key = `i:${d.join('x')}:${arr.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const n = this.fresh('ci');
    this.inits.push({ name: n, dataType: DT.INT64, dims: d, raw: bytesOf(BigInt64Array.from(arr.map((v) => BigInt(v)))) });
    this.constCache.set(key, n);
    return n;
  }

  /** Add a node with one output; returns the output's name. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outName?: string, domain?: string): string {
    return this.opN(op, inputs, 1, attrs, outName, domain)[0];
  }

  /** Add a node with `n` outputs. */
  opN(op: string, inputs: string[], n: number, attrs: Record<string, AttrValue> = {}, outName?: string, domain?: string): string[] {
    const base = outName ?? `_${op.toLowerCase()}`;
    const outputs = Array.from({ length: n }, (_, i) => (outName && n === 1 ? (this.names.add(outName), outName) : this.fresh(n === 1 ? base : `${base}_o${i}`)));
    this.nodes.push({ op, inputs, outputs, name: this.fresh(`n_${op}`), attrs, domain });
    return outputs;
  }

  build(producer = 'lowbit-bench', extraOpsets: { domain: string; version: number }[] = []): Uint8Array {
    return encodeModel({
      irVersion: IR_VERSION,
      opsets: [{ domain: '', version: OPSET }, ...extraOpsets],
      producer,
      graphName: 'lowbit_bench',
      nodes: this.nodes,
      initializers: this.inits,
      inputs: this.inputs,
      outputs: this.outputs,
    });
  }
}
