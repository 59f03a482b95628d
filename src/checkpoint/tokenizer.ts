/**
 * The one tokenizer code path for every model: `tokenizer.json` (+ `tokenizer_config.json`
 * for the BOS policy and special-token names) through `@huggingface/tokenizers`.
 *
 * BOS is handled here, not by the tokenizer.json post-processor, so callers get the same
 * contract from SentencePiece-style (stories260k, Llama 2), Llama 3 and Qwen3 tokenizers:
 * `encode(text)` adds BOS when the model expects it, `encode(text, {addBos: false})` never does.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { UserError } from '../errors.ts';
import { oneLine, parseJsonObject } from './json.ts';

export interface TextTokenizer {
  /** Token ids of `text`; BOS first when `addBos` (default `addBosDefault`) and the model has one. */
  encode(text: string, opts?: { addBos?: boolean }): number[];
  /** Text of `ids`; special tokens (BOS, EOS, ...) are dropped. */
  decode(ids: readonly number[]): string;
  bosId: number | null;
  eosId: number | null;
  /** One past the largest id the tokenizer can produce (may be below config.json's padded vocab_size). */
  vocabSize: number;
  addBosDefault: boolean;
}

function readJson(path: string, required: boolean): Record<string, unknown> | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    if (!required) return null;
    throw new UserError(`${path}: missing; the model directory needs a Hugging Face tokenizer.json`);
  }
  // Strict: a duplicated vocabulary entry would silently change token ids.
  return parseJsonObject(text, path, 're-download or re-convert the model');
}

/** A special-token field of tokenizer_config.json: a string or an AddedToken-like object. */
function tokenName(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

export async function loadTokenizer(modelDir: string): Promise<TextTokenizer> {
  const jsonPath = join(modelDir, 'tokenizer.json');
  const tokenizerJson = readJson(jsonPath, true)!;
  const config = readJson(join(modelDir, 'tokenizer_config.json'), false) ?? {};
  if (!Array.isArray(tokenizerJson.added_tokens)) tokenizerJson.added_tokens = [];
  for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) tokenizerJson[key] ??= null;
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokenizerJson, config);
  } catch (e) {
    throw new UserError(`${jsonPath}: cannot be loaded (${oneLine((e as Error).message)}); re-download or re-convert the model`, 2, { cause: e });
  }

  const idOf = (field: string): number | null => {
    const name = tokenName(config[field]);
    if (name === null) return null;
    const id = tok.token_to_id(name);
    if (id === undefined) throw new UserError(`${join(modelDir, 'tokenizer_config.json')}: ${field} '${name}' is not in tokenizer.json's vocabulary`);
    return id;
  };
  const bosId = idOf('bos_token');
  const eosId = idOf('eos_token');

  // Explicit add_bos_token wins; otherwise follow what tokenizer.json's post-processor does.
  let addBosDefault: boolean;
  if (typeof config.add_bos_token === 'boolean') addBosDefault = config.add_bos_token && bosId !== null;
  else addBosDefault = bosId !== null && tok.encode('a', { add_special_tokens: true }).ids[0] === bosId;

  let maxId = -1;
  for (const id of tok.get_vocab(true).values()) if (id > maxId) maxId = id;

  return {
    bosId,
    eosId,
    addBosDefault,
    vocabSize: maxId + 1,
    encode(text: string, opts: { addBos?: boolean } = {}): number[] {
      if (typeof text !== 'string') throw new TypeError('encode: text must be a string');
      const ids = tok.encode(text, { add_special_tokens: false }).ids;
      const addBos = opts.addBos ?? addBosDefault;
      if (addBos && bosId !== null) ids.unshift(bosId);
      return ids;
    },
    decode(ids: readonly number[]): string {
      if (ids.length === 0) return ''; // the library throws on an empty array
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id > maxId) throw new UserError(`decode: token id ${id} is outside the tokenizer's range 0..${maxId}`);
      }
      return tok.decode([...ids], { skip_special_tokens: true, clean_up_tokenization_spaces: false });
    },
  };
}
