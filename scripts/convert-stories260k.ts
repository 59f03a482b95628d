/**
 * Convert llama2.c's stories260K (model + tok512 tokenizer) into the Hugging Face layout the
 * project bundles in models/stories260k, and copy the held-out TinyStories text into
 * suites/data. Same inputs give the same bytes on every run.
 *
 *   node --import tsx scripts/convert-stories260k.ts [--fixtures DIR] [--out DIR] [--data-out DIR]
 *
 * Defaults: ../shared/fixtures (relative to the repo root), models/stories260k, suites/data.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { UserError } from '../src/errors.ts';
import { fromFloat32 } from '../src/checkpoint/dtypes.ts';
import { writeAtomic, type TensorToWrite } from '../src/checkpoint/safetensors.ts';
import { writeCheckpointTensors } from '../src/checkpoint/tensors.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The fixtures this converter was written and checked against (../shared/fixtures/PROVENANCE.md). */
export const INPUTS = {
  model: { path: 'stories260k/stories260K.bin', bytes: 1_056_540, sha256: 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696' },
  tokenizer: { path: 'stories260k/tok512.bin', bytes: 6_227, sha256: '037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312' },
  text: {
    path: 'tinystories/tinystories_validation_first1000.txt',
    bytes: 807_375,
    sha256: 'c86f734a3a07fffb8a52f4a7970ac7dbeaf4eaf6a031dc8742a8de92fbbb9446',
  },
} as const;

export const DEFAULT_FIXTURES = resolve(REPO, '..', 'shared', 'fixtures');
export const DEFAULT_OUT = join(REPO, 'models', 'stories260k');
export const DEFAULT_DATA_OUT = join(REPO, 'suites', 'data');
export const TEXT_NAME = 'tinystories_validation_first1000.txt';

const SPACE = '\u2581'; // SentencePiece's visible space

export interface Llama2cHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
}

export interface TokPiece {
  /** Raw bytes as stored in tok512.bin. */
  bytes: Buffer;
  score: number;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function readVerified(fixtures: string, input: (typeof INPUTS)[keyof typeof INPUTS]): Buffer {
  const path = join(fixtures, input.path);
  if (!existsSync(path)) throw new UserError(`${path}: fixture not found; pass --fixtures DIR pointing at the shared fixtures folder`);
  const buf = readFileSync(path);
  const got = sha256(buf);
  if (got !== input.sha256) {
    throw new UserError(`${path}: sha256 ${got} (${buf.length} bytes) differs from the expected ${input.sha256} (${input.bytes} bytes); restore the original fixture (see its PROVENANCE.md)`);
  }
  return buf;
}

/** Parse a llama2.c legacy (version 0) checkpoint into named float32 blocks. */
export function parseLlama2c(buf: Buffer): { header: Llama2cHeader; blocks: Map<string, Float32Array> } {
  const h = new Int32Array(7).map((_, i) => buf.readInt32LE(4 * i));
  const header: Llama2cHeader = { dim: h[0], hiddenDim: h[1], nLayers: h[2], nHeads: h[3], nKvHeads: h[4], vocabSize: Math.abs(h[5]), seqLen: h[6] };
  if (h[5] <= 0) throw new UserError('stories260K.bin: negative vocab_size means an untied classifier, which this converter does not expect');
  const { dim, hiddenDim, nLayers: L, nHeads, nKvHeads, vocabSize, seqLen } = header;
  const headSize = dim / nHeads;
  const kvDim = (dim * nKvHeads) / nHeads;
  const layout: [string, number][] = [
    ['token_embedding', vocabSize * dim],
    ['rms_att', L * dim],
    ['wq', L * dim * dim],
    ['wk', L * kvDim * dim],
    ['wv', L * kvDim * dim],
    ['wo', L * dim * dim],
    ['rms_ffn', L * dim],
    ['w1', L * hiddenDim * dim],
    ['w2', L * dim * hiddenDim],
    ['w3', L * hiddenDim * dim],
    ['rms_final', dim],
    ['freq_cis_real', (seqLen * headSize) / 2],
    ['freq_cis_imag', (seqLen * headSize) / 2],
  ];
  const blocks = new Map<string, Float32Array>();
  let off = 28;
  for (const [name, n] of layout) {
    if (off + 4 * n > buf.length) throw new UserError(`stories260K.bin: file ends inside block '${name}'`);
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = buf.readFloatLE(off + 4 * i);
    blocks.set(name, a);
    off += 4 * n;
  }
  if (off !== buf.length) throw new UserError(`stories260K.bin: ${buf.length - off} unexpected trailing bytes`);
  return { header, blocks };
}

/** Parse llama2.c's tokenizer.bin: max_token_length, then (score f32, len i32, bytes) per id. */
export function parseTok512(buf: Buffer, vocabSize = 512): TokPiece[] {
  const pieces: TokPiece[] = [];
  let off = 4;
  for (let i = 0; i < vocabSize; i++) {
    const score = buf.readFloatLE(off);
    const len = buf.readInt32LE(off + 4);
    pieces.push({ bytes: buf.subarray(off + 8, off + 8 + len), score });
    off += 8 + len;
  }
  if (off !== buf.length) throw new UserError(`tok512.bin: ${buf.length - off} unexpected trailing bytes`);
  return pieces;
}

/**
 * llama2.c rotates adjacent pairs (2i, 2i+1) of each head, HF rotates halves (i, i + d/2):
 * move row 2i+j of every head to row j*d/2 + i, so the HF rotation pairs the same values.
 */
export function permuteRopeRows(w: Float32Array, nHeads: number, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * headDim + 2 * i + j) * cols;
        const dst = (h * headDim + j * half + i) * cols;
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

function hfTensors(header: Llama2cHeader, blocks: Map<string, Float32Array>): TensorToWrite[] {
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize } = header;
  const headDim = dim / nHeads;
  const kvDim = nKvHeads * headDim;
  const out: TensorToWrite[] = [];
  const add = (name: string, shape: number[], data: Float32Array) => out.push({ name, dtype: 'F32', shape, data: fromFloat32(data, 'F32') });
  const layerSlice = (block: string, l: number, n: number) => blocks.get(block)!.subarray(l * n, (l + 1) * n);
  add('model.embed_tokens.weight', [vocabSize, dim], blocks.get('token_embedding')!);
  add('model.norm.weight', [dim], blocks.get('rms_final')!);
  for (let l = 0; l < nLayers; l++) {
    const p = `model.layers.${l}`;
    add(`${p}.input_layernorm.weight`, [dim], layerSlice('rms_att', l, dim));
    add(`${p}.post_attention_layernorm.weight`, [dim], layerSlice('rms_ffn', l, dim));
    add(`${p}.self_attn.q_proj.weight`, [dim, dim], permuteRopeRows(layerSlice('wq', l, dim * dim), nHeads, headDim, dim));
    add(`${p}.self_attn.k_proj.weight`, [kvDim, dim], permuteRopeRows(layerSlice('wk', l, kvDim * dim), nKvHeads, headDim, dim));
    add(`${p}.self_attn.v_proj.weight`, [kvDim, dim], layerSlice('wv', l, kvDim * dim));
    add(`${p}.self_attn.o_proj.weight`, [dim, dim], layerSlice('wo', l, dim * dim));
    add(`${p}.mlp.gate_proj.weight`, [hiddenDim, dim], layerSlice('w1', l, hiddenDim * dim));
    add(`${p}.mlp.up_proj.weight`, [hiddenDim, dim], layerSlice('w3', l, hiddenDim * dim));
    add(`${p}.mlp.down_proj.weight`, [dim, hiddenDim], layerSlice('w2', l, dim * hiddenDim));
  }
  return out;
}

const SPECIAL_NAMES = ['<unk>', '<s>', '</s>'];

/**
 * tokenizer.json for the HF tokenizers format. The model is BPE with byte fallback over the
 * tok512 pieces (spaces stored as U+2581). Merges are derived from the scores the way
 * SentencePiece-converted Llama tokenizers derive them: every split of a piece into two
 * pieces is a merge, ranked by the merged piece's score (highest first), ties by the ids of
 * the two halves. The normalizer prepends the dummy prefix (only for non-empty text, as
 * run.c does) and maps spaces to U+2581; the pre-tokenizer cuts the text before each U+2581,
 * which changes nothing (no merge can cross a word start) but lets the library cache words.
 */
export function buildTokenizerJson(pieces: TokPiece[]): object {
  const names = pieces.map((p, id) => (id < SPECIAL_NAMES.length ? SPECIAL_NAMES[id] : p.bytes.toString('utf8').replaceAll(' ', SPACE)));
  for (let id = SPECIAL_NAMES.length; id < pieces.length; id++) {
    if (Buffer.compare(Buffer.from(names[id].replaceAll(SPACE, ' '), 'utf8'), pieces[id].bytes) !== 0) {
      throw new UserError(`tok512.bin: piece ${id} is not valid UTF-8 or already contains U+2581; cannot express it in tokenizer.json`);
    }
  }
  for (let id = SPECIAL_NAMES.length; id < names.length; id++) {
    if (names[id].lastIndexOf(SPACE) > 0) throw new UserError(`tok512.bin: piece ${id} '${names[id]}' has a space after its start; the word-splitting pre-tokenizer would be wrong for it`);
  }
  const vocab: Record<string, number> = {};
  const ids = new Map<string, number>();
  names.forEach((n, id) => {
    if (ids.has(n)) throw new UserError(`tok512.bin: pieces ${ids.get(n)} and ${id} are both '${n}'`);
    ids.set(n, id);
    vocab[n] = id;
  });
  const merges: { left: number; right: number; score: number }[] = [];
  for (let id = SPECIAL_NAMES.length; id < names.length; id++) {
    const cps = Array.from(names[id]);
    for (let k = 1; k < cps.length; k++) {
      const left = ids.get(cps.slice(0, k).join(''));
      const right = ids.get(cps.slice(k).join(''));
      if (left === undefined || right === undefined || left < SPECIAL_NAMES.length || right < SPECIAL_NAMES.length) continue;
      merges.push({ left, right, score: pieces[id].score });
    }
  }
  merges.sort((a, b) => b.score - a.score || a.left - b.left || a.right - b.right);
  const special = (id: number) => ({ id, content: names[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [0, 1, 2].map(special),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE },
      ],
    },
    // Split before each U+2581: exact because no piece holds U+2581 past its first character
    // (checked above), so no merge crosses a word start; it lets the library cache words.
    pre_tokenizer: { type: 'Split', pattern: { Regex: `${SPACE}[^${SPACE}]*` }, behavior: 'Isolated', invert: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => [names[m.left], names[m.right]]),
    },
  };
}

function modelConfig(h: Llama2cHeader): object {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: h.dim,
    intermediate_size: h.hiddenDim,
    num_hidden_layers: h.nLayers,
    num_attention_heads: h.nHeads,
    num_key_value_heads: h.nKvHeads,
    head_dim: h.dim / h.nHeads,
    vocab_size: h.vocabSize,
    max_position_embeddings: h.seqLen,
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    rope_scaling: null,
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    tie_word_embeddings: true,
    bos_token_id: 1,
    eos_token_id: 2,
    initializer_range: 0.02,
    pretraining_tp: 1,
    use_cache: true,
    torch_dtype: 'float32',
  };
}

const TOKENIZER_CONFIG = {
  tokenizer_class: 'LlamaTokenizerFast',
  add_bos_token: true,
  add_eos_token: false,
  bos_token: '<s>',
  eos_token: '</s>',
  unk_token: '<unk>',
  pad_token: null,
  model_max_length: 512,
  clean_up_tokenization_spaces: false,
  legacy: true,
};

const GENERATION_CONFIG = { bos_token_id: 1, eos_token_id: 2 };

const MODEL_LICENSE = `MIT License

Copyright (c) 2023 Andrej Karpathy

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
`;

function modelProvenance(outputs: [string, string][]): string {
  return `# stories260k: provenance

Andrej Karpathy's \`stories260K\`, a Llama-2-architecture model with 260,032 trained
parameters (dim 64, 5 layers, 8 query heads, 4 KV heads, SwiGLU width 172, vocabulary 512),
trained with llama2.c on TinyStories, and its 512-piece tokenizer \`tok512\`. MIT licence
(see LICENSE; llama2.c's licence, the model card says \`license: mit\`).

## Upstream

- Hugging Face \`karpathy/tinyllamas\`, revision \`0bd21da7698eaf29a0d7de3992de8a46ef624add\`:
  \`stories260K/stories260K.bin\` and \`stories260K/tok512.bin\`.
- Training recipe: llama2.c \`doc/stories260K.md\` (karpathy/llama2.c @ \`350e04fe35433e6d2941dce5a1f53308f87058eb\`).
- How the bytes were obtained and checked: the project's fixture notes (\`PROVENANCE.md\` of
  the shared fixtures folder, section 1 and 2).

| input | bytes | sha256 |
|---|---|---|
| \`stories260K.bin\` | ${INPUTS.model.bytes} | \`${INPUTS.model.sha256}\` |
| \`tok512.bin\` | ${INPUTS.tokenizer.bytes} | \`${INPUTS.tokenizer.sha256}\` |

## What the converter did

\`scripts/convert-stories260k.ts\` reads the two llama2.c files (after checking the sha256s
above) and writes this folder:

- \`model.safetensors\`: the float32 weights, unchanged in value, under Hugging Face
  \`LlamaForCausalLM\` names (w1 = gate_proj, w3 = up_proj, w2 = down_proj, rms_att =
  input_layernorm, rms_ffn = post_attention_layernorm, rms_final = model.norm). No
  \`lm_head.weight\`: the classifier is tied to \`model.embed_tokens.weight\`. The rows of
  \`q_proj\` and \`k_proj\` are permuted within each head (row 2i+j goes to row j*4+i), because
  llama2.c rotates adjacent pairs and Hugging Face rotates halves; with that permutation the
  HF forward computes exactly what llama2.c's \`run.c\` computes. The unused
  \`freq_cis\` tables are dropped.
- \`config.json\`, \`generation_config.json\`: the header's shapes, RMSNorm eps 1e-5, RoPE theta 10000, BOS 1, EOS 2.
- \`tokenizer.json\`: a BPE model with byte fallback that reproduces run.c's \`encode\`
  (dummy-prefix space, one token per code point or its bytes \`<0xNN>\` = id b+3, then merge
  the highest-scoring adjacent pair, leftmost on ties). Merges come from the scores: every
  split of a piece into two pieces, ranked by the merged piece's score. Spaces are stored
  as U+2581. A pre-tokenizer cuts the text before each U+2581, which changes no result (no
  piece holds U+2581 past its first character, so no merge crosses a word start) and lets
  the library cache words. Ids 0-2 are named \`<unk>\`, \`<s>\`, \`</s>\` (the .bin stores \`\\n<s>\\n\` etc.).
  Checked against an independent implementation of run.c's rule on all 1000 bundled stories
  (test/checkpoint/tokenizer.test.ts).
- \`tokenizer_config.json\`: BOS added by default, no EOS.

## Re-running it

\`\`\`
node --import tsx scripts/convert-stories260k.ts --fixtures ../shared/fixtures
\`\`\`

The output is byte-for-byte reproducible; test/checkpoint/convert.test.ts re-runs the
converter and compares. Output sha256s:

| file | sha256 |
|---|---|
${outputs.map(([f, h]) => `| \`${f}\` | \`${h}\` |`).join('\n')}
`;
}

const DATA_LICENSE = `# TinyStories validation text: licence and provenance

\`${TEXT_NAME}\` holds the first 1000 stories of the \`validation\` split of the Hugging Face
dataset \`roneneldan/TinyStories\` (Ronen Eldan and Yuanzhi Li, "TinyStories: How Small Can
Language Models Be and Still Speak Coherent English?", 2023), each followed by
\`\\n<|endoftext|>\\n\`.

## Licence

TinyStories is released under the **Community Data License Agreement - Sharing, Version 1.0**
(CDLA-Sharing-1.0), https://cdla.dev/sharing-1-0/. You may use, modify and share this data;
if you publish it or data derived from it, you must do so under the terms of CDLA-Sharing-1.0
and include this notice. The data is provided "as is", without warranty of any kind.

## Provenance

- Copied unchanged (${INPUTS.text.bytes} bytes, sha256 \`${INPUTS.text.sha256}\`) by
  \`scripts/convert-stories260k.ts\` from the project's shared fixtures.
- Those bytes came from \`BhargavKumarNath/NanoGPT\`, path \`data_corpus/tinystories_val.txt\`,
  commit \`25e02c8a2de871dc40affb4c68a5346154adf80e\`, written by that repo's
  \`scripts/prepare_data.py\` from the dataset's validation split.
- 1000 stories; 792,375 UTF-8 bytes of story text after stripping the whitespace around
  each story; 154,689 words (split on \`\\s+\`); 389,336 stories260k tokens without BOS.
- Known defect kept as is: 51 stories contain UTF-8 mojibake (e.g. \`â€™\` for \`’\`), as the
  upstream validation split does.
- Held out from stories260k's training: llama2.c trained on shards 1-49 of
  \`TinyStories_all_data.tar.gz\`; this text is from the dataset authors' separate
  validation split. Whether some stories also appear in the training shards is not known.
`;

function json(o: object): Buffer {
  return Buffer.from(JSON.stringify(o, null, 2) + '\n');
}

export interface ConvertOptions {
  fixtures?: string;
  out?: string;
  dataOut?: string;
}

/** Run the conversion; returns the paths written. */
export function convertStories260k(opts: ConvertOptions = {}): string[] {
  const fixtures = opts.fixtures ?? DEFAULT_FIXTURES;
  const out = opts.out ?? DEFAULT_OUT;
  const dataOut = opts.dataOut ?? DEFAULT_DATA_OUT;
  const modelBuf = readVerified(fixtures, INPUTS.model);
  const tokBuf = readVerified(fixtures, INPUTS.tokenizer);
  const textBuf = readVerified(fixtures, INPUTS.text);

  const { header, blocks } = parseLlama2c(modelBuf);
  const pieces = parseTok512(tokBuf, header.vocabSize);
  mkdirSync(out, { recursive: true });
  mkdirSync(dataOut, { recursive: true });

  const written: string[] = [];
  const outputs: [string, string][] = [];
  const put = (dir: string, name: string, data: Buffer, record = true) => {
    writeAtomic(join(dir, name), [data]);
    written.push(join(dir, name));
    if (record) outputs.push([name, sha256(data)]);
  };
  writeCheckpointTensors(out, hfTensors(header, blocks), { metadata: { format: 'pt' } });
  written.push(join(out, 'model.safetensors'));
  outputs.push(['model.safetensors', sha256(readFileSync(join(out, 'model.safetensors')))]);
  put(out, 'config.json', json(modelConfig(header)));
  put(out, 'generation_config.json', json(GENERATION_CONFIG));
  put(out, 'tokenizer.json', json(buildTokenizerJson(pieces)));
  put(out, 'tokenizer_config.json', json(TOKENIZER_CONFIG));
  put(out, 'LICENSE', Buffer.from(MODEL_LICENSE));
  put(out, 'PROVENANCE.md', Buffer.from(modelProvenance(outputs)), false);
  put(dataOut, TEXT_NAME, textBuf, false);
  put(dataOut, 'LICENSE-TinyStories.md', Buffer.from(DATA_LICENSE), false);
  return written;
}

function main(): void {
  const { values } = parseArgs({
    options: { fixtures: { type: 'string' }, out: { type: 'string' }, 'data-out': { type: 'string' } },
    strict: true,
  });
  const written = convertStories260k({
    fixtures: values.fixtures && resolve(values.fixtures),
    out: values.out && resolve(values.out),
    dataOut: values['data-out'] && resolve(values['data-out']),
  });
  for (const p of written) process.stderr.write(`wrote ${p}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    main();
  } catch (e) {
    if (e instanceof UserError || String((e as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`error: ${(e as Error).message}\n`);
      process.exit(2);
    }
    throw e;
  }
}
