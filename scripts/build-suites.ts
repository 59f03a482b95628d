/**
 * Builds the derived suite data from the bundled TinyStories file, deterministically
 * (fixed seed, fixed key order): suites/data/tinystories-cloze.jsonl and
 * suites/data/tinystories-lastword.jsonl, from the scored stories 501-1000 only (1-500 are
 * reserved for calibration). Run: npx tsx scripts/build-suites.ts [--check]
 * With --check it writes nothing and exits 1 if a committed file differs from a rebuild.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic } from '../src/checkpoint/safetensors.ts';
import { buildSuiteData, SUITE_DATA_FILES } from '../src/eval/builders.ts';
import { SUITES_DIR } from '../src/matrix/suites.ts';

const check = process.argv.includes('--check');
const built = buildSuiteData(SUITES_DIR);
let stale = 0;
for (const [name, text] of Object.entries(built)) {
  const path = join(SUITES_DIR, SUITE_DATA_FILES[name as keyof typeof SUITE_DATA_FILES]);
  if (check) {
    let old = '';
    try {
      old = readFileSync(path, 'utf8');
    } catch {
      /* missing counts as stale */
    }
    if (old !== text) {
      stale++;
      process.stderr.write(`${path}: differs from a rebuild\n`);
    }
  } else {
    writeAtomic(path, [Buffer.from(text, 'utf8')]);
    process.stderr.write(`wrote ${path} (${text.split('\n').length - 1} items)\n`);
  }
}
process.exitCode = stale ? 1 : 0;
