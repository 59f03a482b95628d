/**
 * What `bench regress` accepts as input, checked before any cell is compared: every record
 * (baseline and run) is well formed with finite numbers, carries its coverage (items scored,
 * --limit, data hash), and every cell in both agrees on that coverage. A comparison over
 * different item sets is not a regression test at all, so it is an input error (exit 2),
 * never "no regression".
 */
import { z } from 'zod';
import { UserError } from '../errors.ts';
import type { ResultRecord } from '../results/record.ts';
import { cellKey } from './compare.ts';

const finite = z.number().refine(Number.isFinite, 'expected a finite number');

const CoverageSchema = z.object({
  items: z.number().int().min(0),
  limit: z.number().int().min(1).nullable(),
  dataSha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits'),
});

/** The fields regress reads; anything else a record carries passes through untouched. */
const RecordSchema = z
  .object({
    model: z.string().min(1),
    scheme: z.string().min(1),
    method: z.string().min(1),
    recipe: z.string().nullable().optional(),
    suite: z.string().min(1),
    task: z.string().min(1),
    metric: z.string().min(1),
    value: finite,
    stderr: finite.min(0).nullable().optional(),
    n: z.number().int().min(0),
    higherIsBetter: z.boolean(),
    items: z
      .object({
        aggregation: z.enum(['mean', 'perplexity', 'bits_per_unit']),
        values: z.array(finite),
        weights: z.array(finite).optional(),
      })
      .refine((i) => !i.weights || i.weights.length === i.values.length, 'items.weights and items.values differ in length')
      .optional(),
    coverage: CoverageSchema.optional(),
  })
  .loose();

export type Coverage = z.infer<typeof CoverageSchema>;

/** Check records one by one; the first bad one is a one-line error naming its place and field. */
export function validateRecords(records: readonly unknown[], where: string, fix: string): ResultRecord[] {
  records.forEach((r, i) => {
    const res = RecordSchema.safeParse(r);
    if (!res.success) {
      const issue = res.error.issues[0];
      const field = issue.path.length ? `.${issue.path.join('.')}` : '';
      const what = r === null || typeof r !== 'object' || Array.isArray(r) ? `is ${JSON.stringify(r) ?? typeof r}, not a result record` : issue.message;
      throw new UserError(`${where}: record ${i + 1}${field}: ${what}; ${fix}`);
    }
  });
  return records as ResultRecord[];
}

/** Every record must say which items it covers; `fix` tells how to get records that do. */
export function requireCoverage(records: readonly ResultRecord[], where: string, fix: string): void {
  const without = records.filter((r) => r.coverage === undefined);
  if (without.length)
    throw new UserError(
      `${where}: ${without.length} of ${records.length} records carry no coverage (items scored, --limit, data hash), so a comparison could mix item sets; ${fix}`,
    );
}

const limitText = (c: Coverage) => (c.limit === null ? 'no --limit' : `--limit ${c.limit}`);

/**
 * Baseline and run must have scored the same items of the same data in every cell both
 * hold. Throws (exit 2) naming the first disagreeing cell and both values.
 */
export function assertComparable(baseline: readonly ResultRecord[], current: readonly ResultRecord[]): void {
  const cur = new Map(current.map((r) => [cellKey(r), r])); // a later record of a cell wins, as in regress()
  const base = new Map(baseline.map((r) => [cellKey(r), r]));
  const problems: string[] = [];
  for (const [key, b] of [...base].sort(([a], [z]) => (a < z ? -1 : a > z ? 1 : 0))) {
    const c = cur.get(key);
    if (!c) continue;
    const bc = b.coverage!;
    const cc = c.coverage!;
    if (bc.items !== cc.items)
      problems.push(`cell ${key}: the baseline scored ${bc.items} items (${limitText(bc)}), this run ${cc.items} (${limitText(cc)})`);
    else if (bc.dataSha256 !== cc.dataSha256)
      problems.push(`cell ${key}: the baseline's data has sha256 ${bc.dataSha256.slice(0, 12)}…, this run's ${cc.dataSha256.slice(0, 12)}…`);
  }
  if (problems.length) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more cell${problems.length > 2 ? 's' : ''})` : '';
    throw new UserError(
      `not comparable: ${problems[0]}${more}; run with the baseline's items (same --limit and suite data) or take a new baseline with 'bench baseline update'`,
    );
  }
}
