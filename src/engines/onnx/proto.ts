/**
 * A minimal protobuf writer for the handful of ONNX messages the graph builder needs
 * (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto).
 * Field numbers are those of onnx/onnx.proto. Weights are kept as references to their
 * typed arrays until the final concatenation, so each byte is copied once.
 */

const WIRE_VARINT = 0;
const WIRE_FIXED32 = 5;
const WIRE_LEN = 2;

export class ProtoWriter {
  private parts: Uint8Array[] = [];
  length = 0;
  private scratch: number[] = [];

  private push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.parts.push(bytes);
    this.length += bytes.length;
  }

  private rawVarint(v: number | bigint): void {
    const out = this.scratch;
    out.length = 0;
    let x = BigInt.asUintN(64, BigInt(v));
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) b |= 0x80;
      out.push(b);
    } while (x !== 0n);
    this.push(Uint8Array.from(out));
  }

  private tag(field: number, wire: number): void {
    this.rawVarint((field << 3) | wire);
  }

  /** int32/int64/enum field (negative values as 64-bit two's complement, as protobuf does). */
  varint(field: number, v: number | bigint): this {
    this.tag(field, WIRE_VARINT);
    this.rawVarint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, WIRE_LEN);
    this.rawVarint(data.length);
    this.push(data);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, m: ProtoWriter): this {
    this.tag(field, WIRE_LEN);
    this.rawVarint(m.length);
    for (const p of m.parts) this.push(p);
    return this;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

/** onnx.TensorProto.DataType values used here. */
export const DT = { FLOAT: 1, UINT8: 2, INT32: 6, INT64: 7, BOOL: 9, DOUBLE: 11 } as const;
export type DataTypeCode = (typeof DT)[keyof typeof DT];

const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

export type AttrValue =
  | { int: number }
  | { float: number }
  | { ints: readonly number[] }
  | { floats: readonly number[] }
  | { string: string }
  | { tensor: TensorValue };

export interface TensorValue {
  name?: string;
  dataType: DataTypeCode;
  dims: readonly number[];
  /** Little-endian element bytes. */
  raw: Uint8Array;
}

export function tensorProto(t: TensorValue): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.varint(1, d);
  w.varint(2, t.dataType);
  if (t.name) w.string(8, t.name);
  w.bytes(9, t.raw);
  return w;
}

export function attributeProto(name: string, v: AttrValue): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if ('int' in v) w.varint(3, v.int).varint(20, ATTR.INT);
  else if ('float' in v) w.float(2, v.float).varint(20, ATTR.FLOAT);
  else if ('ints' in v) {
    for (const i of v.ints) w.varint(8, i);
    w.varint(20, ATTR.INTS);
  } else if ('floats' in v) {
    for (const f of v.floats) w.float(7, f);
    w.varint(20, ATTR.FLOATS);
  } else if ('string' in v) w.string(4, v.string).varint(20, ATTR.STRING);
  else w.message(5, tensorProto(v.tensor)).varint(20, ATTR.TENSOR);
  return w;
}

export interface NodeSpec {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name: string;
  attrs?: Record<string, AttrValue>;
  domain?: string;
}

export function nodeProto(n: NodeSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.op);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, attributeProto(k, v));
  if (n.domain) w.string(7, n.domain);
  return w;
}

export interface ValueInfoSpec {
  name: string;
  dataType: DataTypeCode;
  /** Fixed sizes or symbolic names. */
  dims: readonly (number | string)[];
}

export function valueInfoProto(v: ValueInfoSpec): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.dims) shape.message(1, typeof d === 'number' ? new ProtoWriter().varint(1, d) : new ProtoWriter().string(2, d));
  const tensorType = new ProtoWriter().varint(1, v.dataType).message(2, shape);
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}

export interface ModelSpec {
  irVersion: number;
  opsets: readonly { domain: string; version: number }[];
  producer: string;
  graphName: string;
  nodes: readonly NodeSpec[];
  initializers: readonly TensorValue[];
  inputs: readonly ValueInfoSpec[];
  outputs: readonly ValueInfoSpec[];
}

export function encodeModel(m: ModelSpec): Uint8Array {
  const g = new ProtoWriter();
  for (const n of m.nodes) g.message(1, nodeProto(n));
  g.string(2, m.graphName);
  for (const t of m.initializers) g.message(5, tensorProto(t));
  for (const i of m.inputs) g.message(11, valueInfoProto(i));
  for (const o of m.outputs) g.message(12, valueInfoProto(o));
  const model = new ProtoWriter().varint(1, m.irVersion).string(2, m.producer);
  model.message(7, g);
  for (const o of m.opsets) model.message(8, new ProtoWriter().string(1, o.domain).varint(2, o.version));
  return model.finish();
}
