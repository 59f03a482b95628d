/**
 * C[m,n] (+)= A[m,k] · B[n,k]ᵀ in float32 with WebAssembly SIMD (4 lanes): the float32 hot
 * path of mmNT. JS has no SIMD, and V8's scalar code tops out near 4 GFLOP/s per core; the
 * same 2×4 register blocking on f32x4 vectors runs several times faster. The module is tiny
 * and assembled here from its instructions (no toolchain, no binary in the repository).
 * Each output is a fixed-order sum (4 lane partial sums over p ≡ 0..3 mod 4, then added
 * pairwise), so results are deterministic and the same on every thread.
 * Shapes: m even, n and k multiples of 4 (the caller falls back to JS otherwise).
 */

const uleb = (n: number): number[] => { const o: number[] = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; o.push(b); } while (n); return o; };
const sleb = (n: number): number[] => {
  const o: number[] = [];
  for (;;) { const b = n & 0x7f; n >>= 7; if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) { o.push(b); return o; } o.push(b | 0x80); }
};
const vec = (bytes: number[]): number[] => [...uleb(bytes.length), ...bytes];
const section = (id: number, body: number[]): number[] => [id, ...vec(body)];

// Instructions used.
const get = (l: number) => [0x20, ...uleb(l)];
const set = (l: number) => [0x21, ...uleb(l)];
const i32c = (v: number) => [0x41, ...sleb(v)];
const ADD = [0x6a], MUL = [0x6c], LT_U = [0x49], SHL = [0x74];
const simd = (op: number, ...imm: number[]) => [0xfd, ...uleb(op), ...imm];
const load = (off = 0) => simd(0x00, 2, ...uleb(off)); // v128.load align=4 bytes (a hint)
const store = (off = 0) => simd(0x0b, 2, ...uleb(off));
const FADD = simd(0xe4), FMUL = simd(0xe6);
const shuffle = (lanes: number[]) => simd(0x0d, ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]));
const ZERO = simd(0x0c, ...new Array(16).fill(0));

// Locals: params a b c m n k acc (i32), then i32 i j p k4 ra0 ra1 b0 b1 b2 b3 cr, v128 s0..s7 x0 x1.
const [A, B, C, M, N, K, ACC] = [0, 1, 2, 3, 4, 5, 6];
const [I, J, P, K4, RA0, RA1, B0, B1, B2, B3, CR] = [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17];
const S = (r: number, c: number) => 18 + r * 4 + c;
const X0 = 26, X1 = 27;

/** [hsum(s0), hsum(s1), hsum(s2), hsum(s3)] of four v128 locals, left on the stack. */
function hsum4(l: number[]): number[] {
  const pair = (a: number, b: number) => [...get(a), ...get(b), ...shuffle([0, 4, 1, 5]), ...get(a), ...get(b), ...shuffle([2, 6, 3, 7]), ...FADD];
  // pair(a,b) = [a0+a2, b0+b2, a1+a3, b1+b3]
  return [...pair(l[0], l[1]), ...set(X0), ...pair(l[2], l[3]), ...set(X1),
    ...get(X0), ...get(X1), ...shuffle([0, 1, 4, 5]), ...get(X0), ...get(X1), ...shuffle([2, 3, 6, 7]), ...FADD];
}

function body(): number[] {
  const code: number[] = [];
  const e = (...xs: number[][]) => { for (const x of xs) code.push(...x); };
  e(get(K), i32c(2), SHL, set(K4)); // k in bytes
  e(i32c(0), set(I));
  e([0x03, 0x40]); // loop i
  e(get(A), get(I), get(K4), MUL, ADD, set(RA0), get(RA0), get(K4), ADD, set(RA1));
  e(get(C), get(I), get(N), MUL, i32c(2), SHL, ADD, set(CR));
  e(i32c(0), set(J));
  e([0x03, 0x40]); // loop j
  e(get(B), get(J), get(K4), MUL, ADD, set(B0), get(B0), get(K4), ADD, set(B1), get(B1), get(K4), ADD, set(B2), get(B2), get(K4), ADD, set(B3));
  for (let r = 0; r < 2; r++) for (let c = 0; c < 4; c++) e(ZERO, set(S(r, c)));
  e(i32c(0), set(P));
  e([0x03, 0x40]); // loop p
  e(get(RA0), get(P), ADD, load(), set(X0), get(RA1), get(P), ADD, load(), set(X1));
  const bs = [B0, B1, B2, B3];
  for (let c = 0; c < 4; c++) {
    e(get(bs[c]), get(P), ADD, load());
    e(set(28)); // y: column c of B for this p; s0c += x0·y, s1c += x1·y
    e(get(S(0, c)), get(X0), get(28), FMUL, FADD, set(S(0, c)));
    e(get(S(1, c)), get(X1), get(28), FMUL, FADD, set(S(1, c)));
  }
  e(get(P), i32c(16), ADD, set(P), get(P), get(K4), LT_U, [0x0d, 0x00], [0x0b]); // br_if loop p; end
  for (let r = 0; r < 2; r++) {
    // address of C[i+r, j]
    const addr = [...get(CR), ...(r ? [...get(N), ...i32c(2), ...SHL, ...ADD] : []), ...get(J), ...i32c(2), ...SHL, ...ADD];
    e(addr);
    e(hsum4([S(r, 0), S(r, 1), S(r, 2), S(r, 3)]));
    // accumulate: + the stored row, else + 0 (select on the i32 flag)
    e(addr, load(), ZERO, get(ACC), [0x1b], FADD, store());
  }
  e(get(J), i32c(4), ADD, set(J), get(J), get(N), LT_U, [0x0d, 0x00], [0x0b]); // loop j
  e(get(I), i32c(2), ADD, set(I), get(I), get(M), LT_U, [0x0d, 0x00], [0x0b]); // loop i
  e([0x0b]);
  return code;
}

interface FuncDef { name: string; params: number[]; locals: [number, number][]; body: number[] }
const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;

function moduleBytes(funcs: FuncDef[]): Uint8Array<ArrayBuffer> {
  const type = section(1, [...uleb(funcs.length), ...funcs.flatMap((f) => [0x60, ...vec(f.params), 0])]);
  const func = section(3, [...uleb(funcs.length), ...funcs.map((_, i) => i)]);
  const mem = section(5, [1, 0x00, 1]);
  const name = (x: string) => vec([...Buffer.from(x)]);
  const exp = section(7, [...uleb(funcs.length + 1), ...funcs.flatMap((f, i) => [...name(f.name), 0x00, i]), ...name('mem'), 0x02, 0]);
  const code = section(10, [...uleb(funcs.length), ...funcs.flatMap((f) => vec([...uleb(f.locals.length), ...f.locals.flatMap(([n, t]) => [...uleb(n), t]), ...f.body]))]);
  return Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...type, ...func, ...mem, ...exp, ...code]);
}

type Fn = (...a: number[]) => void;
interface Kernel { fns: Record<string, Fn>; mem: WebAssembly.Memory }
const kernels = new Map<string, Kernel | null>();

function instantiate(key: string, funcs: () => FuncDef[]): Kernel | null {
  if (kernels.has(key)) return kernels.get(key)!;
  let k: Kernel | null = null;
  try {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes(funcs())), {});
    const fns: Record<string, Fn> = {};
    for (const [n, v] of Object.entries(inst.exports)) if (typeof v === 'function') fns[n] = v as Fn;
    k = { fns, mem: inst.exports.mem as WebAssembly.Memory };
  } catch (e) {
    if (process.env.LOWBIT_SIMD_DEBUG) process.stderr.write(`simd ${key}: ${(e as Error).message}\n`);
    k = null; // no WebAssembly SIMD: the JS kernels serve
  }
  kernels.set(key, k);
  return k;
}

const mmKernel = () => instantiate('mm', () => [{ name: 'mm', params: [I32, I32, I32, I32, I32, I32, I32], locals: [[11, I32], [11, V128]], body: body() }]);

let enabled = process.env.LOWBIT_NO_SIMD !== '1';

/** Turn the SIMD kernels off/on (tests compare both paths; LOWBIT_NO_SIMD=1 starts with them off). */
export function setSimd(on: boolean): void {
  enabled = on;
}

export function simdAvailable(): boolean {
  return enabled && mmKernel() !== null;
}

/** Grow a kernel's memory to `bytes` and return a float32 view of it. */
function memF32(k: Kernel, bytes: number): Float32Array {
  const need = Math.ceil(bytes / 65536) - k.mem.buffer.byteLength / 65536;
  if (need > 0) k.mem.grow(need);
  return new Float32Array(k.mem.buffer);
}

/** mmNT on float32 arrays through the SIMD kernel (shapes as the module comment says). */
export function mmNTf32(A: Float32Array, B: Float32Array, Cout: Float32Array, m: number, n: number, k: number, accumulate: boolean): void {
  const kr = mmKernel()!;
  const a = 0, b = a + 4 * m * k, c = b + 4 * n * k, end = c + 4 * m * n;
  const f = memF32(kr, end);
  f.set(A.subarray(0, m * k), a / 4);
  f.set(B.subarray(0, n * k), b / 4);
  if (accumulate) f.set(Cout.subarray(0, m * n), c / 4);
  kr.fns.mm(a, b, c, m, n, k, accumulate ? 1 : 0);
  Cout.set(f.subarray(c / 4, c / 4 + m * n));
}

// ---------------------------------------------------------------------------------------
// Causal attention for head_dim 8 (stories260k), forward and backward, 4 key positions per
// f32x4 vector. Keys and values arrive transposed per kv head ([8][T4], T4 = T rounded up to
// 4, zero padded); q, dA, out and dq are [T][stride] rows with the head's 8 values at the
// pointer. P keeps the probabilities of every (head, query) row with stride T4; lanes past
// the query's position hold 0. The softmax exp is evaluated in float32 on the vectors
// (range reduction to |r| <= ln2/2 and a degree-7 polynomial: relative error ~1e-7, the
// precision of the float32 values it feeds).

const f32c = (v: number) => { const b = Buffer.alloc(4); b.writeFloatLE(v); return [0x43, ...b]; };
const fload = (off = 0) => [0x2a, 2, ...uleb(off)];
const fstore = (off = 0) => [0x38, 2, ...uleb(off)];
const SPLAT = simd(0x13), FSUB = simd(0xe5), FMAX = simd(0xe9), FGT = simd(0x44), NEAREST = simd(0x6a);
const BITSELECT = simd(0x52), TRUNC = simd(0xf8), IADD = simd(0xae), ISHL = simd(0xab), ISPLAT = simd(0x11), ILT = simd(0x39);
const lane = (l: number) => simd(0x1f, l);
const F_ADD = [0x92], F_MUL = [0x94], F_DIV = [0x95], F_MAX = [0x97];
const GE_U = [0x4f], EQZ = [0x45], AND = [0x71], SHR_U = [0x76];
const vconst = (x: number) => [...f32c(x), ...SPLAT];

/** Local allocator for one function: params first, then i32 / v128 locals by name. */
class Locals {
  private n: number;
  private i32: string[] = [];
  private v: string[] = [];
  private idx = new Map<string, number>();
  constructor(params: string[]) { params.forEach((p, i) => this.idx.set(p, i)); this.n = params.length; }
  i(name: string): number { return this.get(name, this.i32); }
  x(name: string): number { return this.get(name, this.v); }
  private get(name: string, list: string[]): number { if (!this.idx.has(name)) { list.push(name); this.idx.set(name, -1); } return this.idx.get(name)!; }
  /** Assign indices (i32 locals first, then v128) and resolve the body's placeholders. */
  finish(): [number, number][] {
    let k = this.n;
    for (const nm of this.i32) this.idx.set(nm, k++);
    for (const nm of this.v) this.idx.set(nm, k++);
    return [[this.i32.length, I32], [this.v.length, V128]];
  }
  at(name: string): number { return this.idx.get(name)!; }
}

/** A body built with named locals, resolved after all locals are known. */
function build(params: string[], gen: (L: Locals, e: (...xs: (number[] | (() => number[]))[]) => void, G: (n: string) => () => number[], S: (n: string) => () => number[]) => void): { locals: [number, number][]; body: number[] } {
  const L = new Locals(params);
  const parts: (number[] | (() => number[]))[] = [];
  const e = (...xs: (number[] | (() => number[]))[]) => { parts.push(...xs); };
  const G = (n: string) => () => get(L.at(n));
  const S = (n: string) => () => set(L.at(n));
  gen(L, e, G, S);
  const locals = L.finish();
  return { locals, body: [...parts.flatMap((p) => (typeof p === 'function' ? p() : p)), 0x0b] };
}

/** exp of the vector on the stack (x <= 0; lanes below -87 or -inf give 0). Uses locals ex, en. */
function vexp(G: (n: string) => () => number[], S: (n: string) => () => number[]): (number[] | (() => number[]))[] {
  const c = [1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5, 1, 1];
  const out: (number[] | (() => number[]))[] = [S('ex'), G('ex'), vconst(-87), FMAX, S('er')];
  out.push(G('er'), vconst(Math.LOG2E), FMUL, NEAREST, S('en'));
  // r = x - n·ln2 (two-part constant)
  out.push(G('er'), G('en'), vconst(0.693359375), FMUL, FSUB, G('en'), vconst(-2.12194440e-4), FMUL, FSUB, S('er'));
  out.push(vconst(c[0]));
  for (let i = 1; i < c.length; i++) out.push(G('er'), FMUL, vconst(c[i]), FADD);
  // · 2^n built from the exponent bits
  out.push(G('en'), TRUNC, i32c(127), ISPLAT, IADD, i32c(23), ISHL, FMUL);
  out.push(vconst(0), G('ex'), vconst(-87), FGT, BITSELECT);
  return out;
}

/** Horizontal sum / max of a v128 local as an f32 on the stack. */
const hsum = (G: () => number[]): (number[] | (() => number[]))[] => [G, lane(0), G, lane(1), F_ADD, G, lane(2), G, lane(3), F_ADD, F_ADD];

function attnFwd(): FuncDef {
  const params = ['q', 'kt', 'vt', 'p', 'out', 'T', 'T4', 'qs', 'scale'];
  const { locals, body } = build(params, (L, e, G, S) => {
    for (const n of ['t', 'c', 'nb', 'cend', 'rowP', 'n', 'rem', 'qo']) L.i(n);
    for (let j = 0; j < 8; j++) { L.i(`kb${j}`); L.i(`vb${j}`); L.x(`q${j}`); L.x(`a${j}`); }
    for (const n of ['s', 'mx', 'sum', 'ex', 'er', 'en', 'h0', 'h1', 'iota']) L.x(n);
    // row bases of the transposed keys / values
    for (let j = 0; j < 8; j++) e(G('kt'), G('T4'), i32c(4 * j), MUL, ADD, S(`kb${j}`), G('vt'), G('T4'), i32c(4 * j), MUL, ADD, S(`vb${j}`));
    e(simd(0x0c, ...[0, 1, 2, 3].flatMap((v) => [v, 0, 0, 0])), S('iota'));
    e(i32c(0), S('t'));
    e([0x03, 0x40]); // loop t
    e(G('p'), G('t'), G('T4'), MUL, i32c(2), SHL, ADD, S('rowP'));
    e(G('q'), G('t'), G('qs'), MUL, ADD, S('qo'));
    for (let j = 0; j < 8; j++) e(G('qo'), fload(4 * j), G('scale'), F_MUL, SPLAT, S(`q${j}`));
    e(G('t'), i32c(1), ADD, S('n'), G('n'), i32c(3), AND, S('rem'), G('n'), i32c(2), SHR_U, i32c(4), SHL, S('cend'));
    e(G('n'), i32c(3), ADD, i32c(2), SHR_U, i32c(4), SHL, S('nb'));
    e(vconst(-Infinity), S('mx'));
    const score = (): (number[] | (() => number[]))[] => {
      const o: (number[] | (() => number[]))[] = [];
      for (let j = 0; j < 8; j++) { o.push(G(`kb${j}`), G('c'), ADD, load(), G(`q${j}`), FMUL); if (j) o.push(FADD); }
      return o;
    };
    // full chunks
    e(i32c(0), S('c'), [0x02, 0x40, 0x03, 0x40], G('c'), G('cend'), GE_U, [0x0d, 1]);
    e(...score(), S('s'), G('rowP'), G('c'), ADD, G('s'), store(), G('mx'), G('s'), FMAX, S('mx'));
    e(G('c'), i32c(16), ADD, S('c'), [0x0c, 0, 0x0b, 0x0b]);
    // tail chunk: lanes past the position get -inf
    e([0x02, 0x40], G('rem'), EQZ, [0x0d, 0]);
    e(G('cend'), S('c'), ...score(), vconst(-Infinity), G('iota'), G('rem'), ISPLAT, ILT, BITSELECT, S('s'));
    e(G('rowP'), G('c'), ADD, G('s'), store(), G('mx'), G('s'), FMAX, S('mx'), [0x0b]);
    // row max
    e(G('mx'), lane(0), G('mx'), lane(1), F_MAX, G('mx'), lane(2), G('mx'), lane(3), F_MAX, F_MAX, SPLAT, S('mx'));
    // exp and sum
    e(vconst(0), S('sum'), i32c(0), S('c'), [0x02, 0x40, 0x03, 0x40], G('c'), G('nb'), GE_U, [0x0d, 1]);
    e(G('rowP'), G('c'), ADD, G('rowP'), G('c'), ADD, load(), G('mx'), FSUB, ...vexp(G, S), S('s'), G('s'), store(), G('sum'), G('s'), FADD, S('sum'));
    e(G('c'), i32c(16), ADD, S('c'), [0x0c, 0, 0x0b, 0x0b]);
    e(f32c(1), ...hsum(G('sum')), F_DIV, SPLAT, S('sum')); // sum := 1/sum
    // normalise and weigh the values
    for (let j = 0; j < 8; j++) e(vconst(0), S(`a${j}`));
    e(i32c(0), S('c'), [0x02, 0x40, 0x03, 0x40], G('c'), G('nb'), GE_U, [0x0d, 1]);
    e(G('rowP'), G('c'), ADD, load(), G('sum'), FMUL, S('s'), G('rowP'), G('c'), ADD, G('s'), store());
    for (let j = 0; j < 8; j++) e(G(`a${j}`), G(`vb${j}`), G('c'), ADD, load(), G('s'), FMUL, FADD, S(`a${j}`));
    e(G('c'), i32c(16), ADD, S('c'), [0x0c, 0, 0x0b, 0x0b]);
    e(G('out'), G('t'), G('qs'), MUL, ADD, S('qo'));
    for (let j = 0; j < 8; j++) e(G('qo'), ...hsum(G(`a${j}`)), fstore(4 * j));
    e(G('t'), i32c(1), ADD, S('t'), G('t'), G('T'), LT_U, [0x0d, 0], [0x0b]);
  });
  return { name: 'attnFwd', params: [I32, I32, I32, I32, I32, I32, I32, I32, F32], locals, body };
}

function attnBwd(): FuncDef {
  const params = ['q', 'kt', 'vt', 'p', 'dA', 'sc', 'dq', 'dkt', 'dvt', 'T', 'T4', 'qs', 'scale'];
  const { locals, body } = build(params, (L, e, G, S) => {
    for (const n of ['t', 'c', 'nb', 'rowP', 'qo']) L.i(n);
    for (let j = 0; j < 8; j++) { L.i(`kb${j}`); L.i(`vb${j}`); L.i(`dkb${j}`); L.i(`dvb${j}`); L.x(`g${j}`); L.x(`a${j}`); }
    for (const n of ['s', 'pv', 'dot', 'sv']) L.x(n);
    for (let j = 0; j < 8; j++) {
      for (const [b, src] of [['kb', 'kt'], ['vb', 'vt'], ['dkb', 'dkt'], ['dvb', 'dvt']]) e(G(src), G('T4'), i32c(4 * j), MUL, ADD, S(`${b}${j}`));
    }
    e(G('scale'), SPLAT, S('sv'));
    e(i32c(0), S('t'));
    e([0x03, 0x40]);
    e(G('p'), G('t'), G('T4'), MUL, i32c(2), SHL, ADD, S('rowP'));
    e(G('t'), i32c(4), ADD, i32c(2), SHR_U, i32c(4), SHL, S('nb'));
    e(G('dA'), G('t'), G('qs'), MUL, ADD, S('qo'));
    for (let j = 0; j < 8; j++) e(G('qo'), fload(4 * j), SPLAT, S(`g${j}`));
    // pass 1: dP = dA·v (kept in sc), dot = Σ P·dP, dv += P·dA
    e(vconst(0), S('dot'), i32c(0), S('c'), [0x02, 0x40, 0x03, 0x40], G('c'), G('nb'), GE_U, [0x0d, 1]);
    for (let j = 0; j < 8; j++) { e(G(`vb${j}`), G('c'), ADD, load(), G(`g${j}`), FMUL); if (j) e(FADD); }
    e(S('s'), G('sc'), G('c'), ADD, G('s'), store(), G('rowP'), G('c'), ADD, load(), S('pv'));
    e(G('dot'), G('pv'), G('s'), FMUL, FADD, S('dot'));
    for (let j = 0; j < 8; j++) e(G(`dvb${j}`), G('c'), ADD, G(`dvb${j}`), G('c'), ADD, load(), G('pv'), G(`g${j}`), FMUL, FADD, store());
    e(G('c'), i32c(16), ADD, S('c'), [0x0c, 0, 0x0b, 0x0b]);
    e(...hsum(G('dot')), SPLAT, S('dot'));
    // pass 2: dS = P·(dP - dot)·scale ; dq = dS·k ; dk += dS·q
    e(G('q'), G('t'), G('qs'), MUL, ADD, S('qo'));
    for (let j = 0; j < 8; j++) e(G('qo'), fload(4 * j), SPLAT, S(`g${j}`), vconst(0), S(`a${j}`));
    e(i32c(0), S('c'), [0x02, 0x40, 0x03, 0x40], G('c'), G('nb'), GE_U, [0x0d, 1]);
    e(G('rowP'), G('c'), ADD, load(), G('sc'), G('c'), ADD, load(), G('dot'), FSUB, FMUL, G('sv'), FMUL, S('s'));
    for (let j = 0; j < 8; j++) {
      e(G(`a${j}`), G(`kb${j}`), G('c'), ADD, load(), G('s'), FMUL, FADD, S(`a${j}`));
      e(G(`dkb${j}`), G('c'), ADD, G(`dkb${j}`), G('c'), ADD, load(), G('s'), G(`g${j}`), FMUL, FADD, store());
    }
    e(G('c'), i32c(16), ADD, S('c'), [0x0c, 0, 0x0b, 0x0b]);
    e(G('dq'), G('t'), G('qs'), MUL, ADD, S('qo'));
    for (let j = 0; j < 8; j++) e(G('qo'), ...hsum(G(`a${j}`)), fstore(4 * j));
    e(G('t'), i32c(1), ADD, S('t'), G('t'), G('T'), LT_U, [0x0d, 0], [0x0b]);
  });
  return { name: 'attnBwd', params: [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, F32], locals, body };
}

const attnKernel = () => instantiate('attn', () => [attnFwd(), attnBwd()]);

export function simdAttentionAvailable(): boolean {
  return simdAvailable() && attnKernel() !== null;
}

/** Memory plan of one sample's attention (byte offsets), P of all heads kept for the backward. */
function plan(T: number, H: number, KV: number) {
  const T4 = (T + 3) & ~3, qd = H * 8;
  const q = 0, dA = q + 4 * T * qd, out = dA + 4 * T * qd, dq = out + 4 * T * qd;
  const kt = dq + 4 * T * qd, vt = kt + 4 * KV * 8 * T4, dkt = vt + 4 * KV * 8 * T4, dvt = dkt + 4 * KV * 8 * T4;
  const sc = dvt + 4 * KV * 8 * T4, p = sc + 4 * T4, end = p + 4 * H * T * T4;
  return { T4, qd, q, dA, out, dq, kt, vt, dkt, dvt, sc, p, end };
}

/** Transpose kv heads of x [T, KV·8] into [KV][8][T4] at float offset o (zero padding stays 0). */
function packT(x: Float32Array, f: Float32Array, o: number, T: number, KV: number, T4: number): void {
  const kd = KV * 8;
  for (let g = 0; g < KV; g++) for (let j = 0; j < 8; j++) {
    const r = o + (g * 8 + j) * T4, c = g * 8 + j;
    for (let t = 0; t < T; t++) f[r + t] = x[t * kd + c];
    for (let t = T; t < T4; t++) f[r + t] = 0;
  }
}

/** Forward: att [T, H·8] from rotated q [T, H·8], rotated k and v [T, KV·8]. */
export function attentionForwardF32(qr: Float32Array, kr: Float32Array, v: Float32Array, att: Float32Array, T: number, H: number, KV: number): void {
  const k = attnKernel()!;
  const L = plan(T, H, KV);
  const f = memF32(k, L.end);
  f.set(qr.subarray(0, T * L.qd), L.q / 4);
  packT(kr, f, L.kt / 4, T, KV, L.T4);
  packT(v, f, L.vt / 4, T, KV, L.T4);
  const grp = H / KV, scale = Math.fround(1 / Math.sqrt(8));
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / grp);
    k.fns.attnFwd(L.q + 32 * h, L.kt + 4 * g * 8 * L.T4, L.vt + 4 * g * 8 * L.T4, L.p + 4 * h * T * L.T4, L.out + 32 * h, T, L.T4, 4 * L.qd, scale);
  }
  att.set(f.subarray(L.out / 4, L.out / 4 + T * L.qd));
}

/** Backward after attentionForwardF32 on the same thread (P stays in its memory). */
export function attentionBackwardF32(dAtt: Float32Array, dq: Float32Array, dk: Float32Array, dv: Float32Array, T: number, H: number, KV: number): void {
  const k = attnKernel()!;
  const L = plan(T, H, KV);
  const f = memF32(k, L.end);
  f.set(dAtt.subarray(0, T * L.qd), L.dA / 4);
  f.fill(0, L.dkt / 4, L.sc / 4);
  const grp = H / KV, scale = Math.fround(1 / Math.sqrt(8));
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / grp), go = 4 * g * 8 * L.T4;
    k.fns.attnBwd(L.q + 32 * h, L.kt + go, L.vt + go, L.p + 4 * h * T * L.T4, L.dA + 32 * h, L.sc, L.dq + 32 * h, L.dkt + go, L.dvt + go, T, L.T4, 4 * L.qd, scale);
  }
  dq.set(f.subarray(L.dq / 4, L.dq / 4 + T * L.qd));
  const kd = KV * 8;
  for (let g = 0; g < KV; g++) for (let j = 0; j < 8; j++) {
    const r = (g * 8 + j) * L.T4, c = g * 8 + j;
    for (let t = 0; t < T; t++) { dk[t * kd + c] = f[L.dkt / 4 + r + t]; dv[t * kd + c] = f[L.dvt / 4 + r + t]; }
  }
}
