/**
 * One layer-matching rule (issue 14): the header-only validator of external output
 * (validateCompressedTensors) and the reader (readCompressedCheckpoint) decide the same for
 * every layer-selection case: `ignore` by full name, by class name, by bare suffix (which
 * compressed-tensors does not match), by `re:` pattern (matched at the start, as Python's
 * re.match), and `targets` other than "Linear". And the rule itself is compressed-tensors'
 * own: every (name, entry) pair of the table is also asked of compressed_tensors'
 * `is_match` in the quant tool environment.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCompressedCheckpoint } from '../../src/checkpoint/compressed-tensors.ts';
import { matchesEntry, validateCompressedTensors } from '../../src/checkpoint/codecs/index.ts';
import { quantizeModel } from '../../src/quant/index.ts';
import { makeTinyModel } from '../quant/helpers.ts';
import { jsonLines, runTool } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'layer-match-'));
const model = makeTinyModel(join(root, 'model'), 5);
const DOWN0 = 'model.layers.0.mlp.down_proj';
// Two checkpoints: every decoder Linear quantized; and every down_proj kept dense.
const all = join(root, 'all');
await quantizeModel(model, 'W4A16', 'rtn', { out: all, groupSize: 32 });
const noDown = join(root, 'no-down');
await quantizeModel(model, 'W4A16', 'rtn', { out: noDown, groupSize: 32, ignore: ['re:.*down_proj'] });
const allNames = readCompressedCheckpoint(all).quantized;
const downs = allNames.filter((n) => n.endsWith('down_proj'));

interface Case { what: string; base: string; ignore?: string[]; targets?: string[]; quantized?: string[]; error?: RegExp }
const CASES: Case[] = [
  { what: 'nothing ignored', base: all, ignore: ['lm_head'], quantized: allNames },
  { what: 'ignore by full name', base: noDown, ignore: ['lm_head', ...downs], quantized: allNames.filter((n) => !downs.includes(n)) },
  { what: 'ignore by re: pattern', base: noDown, ignore: ['lm_head', 're:.*mlp\\.down_proj$'], quantized: allNames.filter((n) => !downs.includes(n)) },
  { what: 'ignore by bare module suffix matches nothing', base: noDown, ignore: ['lm_head', 'mlp.down_proj'], error: new RegExp(`layer '${DOWN0.replace(/\./g, '\\.')}': missing tensor 'weight_shape'`) },
  { what: 'ignore by re: not anchored at the start matches nothing', base: noDown, ignore: ['lm_head', 're:mlp\\.down_proj'], error: /down_proj': missing tensor 'weight_shape'/ },
  { what: 'ignore by class name Linear', base: all, ignore: ['Linear'], error: /has quantized tensors but is listed in ignore/ },
  { what: 'ignore a layer that still has quantized tensors', base: all, ignore: ['lm_head', DOWN0], error: new RegExp(`layer '${DOWN0.replace(/\./g, '\\.')}': has quantized tensors but is listed in ignore`) },
  { what: 'targets by re: pattern', base: noDown, ignore: ['lm_head'], targets: ['re:.*self_attn\\..*', 're:.*mlp\\.(gate|up)_proj'], quantized: allNames.filter((n) => !downs.includes(n)) },
  { what: 'targets by full name', base: all, ignore: [], targets: [DOWN0], error: /has quantized tensors but is not targeted/ },
];

function variant(c: Case, i: number): string {
  const dir = join(root, `case-${i}`);
  cpSync(c.base, dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const qc = cfg.quantization_config;
  if (c.ignore) qc.ignore = c.ignore;
  if (c.targets) qc.config_groups.group_0.targets = c.targets;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  return dir;
}

function outcome(fn: () => { quantized: string[] }): { quantized: string[] } | { error: string } {
  try {
    return { quantized: [...fn().quantized].sort() };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

for (const [i, c] of CASES.entries()) {
  test(`validator and reader agree: ${c.what}`, () => {
    const dir = variant(c, i);
    const v = outcome(() => validateCompressedTensors(dir));
    const r = outcome(() => readCompressedCheckpoint(dir));
    assert.deepEqual(v, r, 'validator and reader disagree');
    if (c.error) assert.match((r as { error: string }).error ?? '', c.error);
    else assert.deepEqual(r, { quantized: [...c.quantized!].sort() });
  });
}

test("the matching rule is compressed-tensors' is_match", async () => {
  const names = [DOWN0, 'model.layers.1.self_attn.q_proj', 'model.layers.12.mlp.gate_proj', 'lm_head'];
  const entries = ['Linear', 'lm_head', DOWN0, 'mlp.down_proj', 'down_proj', 're:.*down_proj', 're:down_proj', 're:model\\.layers\\.1\\.', 're:.*self_attn\\..*', 're:.*mlp\\.(gate|up)_proj', 're:model.layers.1', 'model.layers.1', 'Embedding'];
  const pairs = names.flatMap((n) => entries.map((e) => [n, e] as [string, string]));
  const path = join(root, 'match.json');
  writeFileSync(path, JSON.stringify(pairs));
  const [{ results: theirs }] = jsonLines<{ results: boolean[] }>((await runTool('quant', 'ct_match.py', [path], 120_000)).stdout);
  const ours = pairs.map(([n, e]) => matchesEntry(n, e));
  const differ = pairs.flatMap(([n, e], i) => (ours[i] === theirs[i] ? [] : [`${n} ~ ${e}: ours ${ours[i]}, compressed-tensors ${theirs[i]}`]));
  assert.equal(theirs.length, pairs.length);
  assert.deepEqual(differ, []);
  assert.ok(ours.some((x) => x) && ours.some((x) => !x));
});
