/**
 * `models.json`: the model matrix. Aliases map to a source (a local HF-layout directory
 * or `hf:ORG/NAME` at a pinned revision), the engines the model runs on, per-model
 * overrides, the named recipes and the default matrix. Validated with zod; every problem
 * is reported as one line naming its JSON path, e.g.
 * `models.json: models.qwen3.overrides.groupSize: expected integer`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { parseJson } from '../checkpoint/json.ts';
import { UserError, didYouMean } from '../errors.ts';
import { getScheme, schemeNames } from '../quant/schemes.ts';

export const ENGINES = ['onnx', 'vllm'] as const;
export const METHODS = ['rtn', 'autoround'] as const;
export type EngineName = (typeof ENGINES)[number];
export type MethodName = (typeof METHODS)[number];

const alias = z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'expected a lowercase alias (a-z, 0-9, . _ -)');

const schemeName = z.string().superRefine((s, ctx) => {
  try {
    getScheme(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
  }
});

const groupSize = z
  .number()
  .int()
  .refine((g) => g === -1 || g > 0, 'expected a positive group size or -1 (per output channel)');

/** AutoRound recipe values (see reference/autoround.md §5). `lr: null` = auto (1/iters). */
export const RecipeValuesSchema = z
  .object({
    iters: z.number().int().min(0),
    nsamples: z.number().int().positive(),
    seqlen: z.number().int().positive(),
    batchSize: z.number().int().positive(),
    lr: z.number().positive().nullable(),
    minmaxLr: z.number().positive().nullable(),
    enableQuantedInput: z.boolean(),
    enableMinmaxTuning: z.boolean(),
  })
  .strict();
export type RecipeValues = z.infer<typeof RecipeValuesSchema>;

const CalibrationSchema = z.union([
  z.object({ path: z.string().min(1).describe('text file, relative to models.json') }).strict(),
  z
    .object({
      hf: z.string().regex(/^[^/\s]+\/[^/\s]+$/, 'expected ORG/NAME'),
      revision: z.string().min(1),
      split: z.string().default('train'),
    })
    .strict(),
]);
export type Calibration = z.infer<typeof CalibrationSchema>;

const VllmSchema = z
  .object({
    serveArgs: z.array(z.string()).default([]).describe('extra `vllm serve` arguments, one argv entry each'),
    env: z.record(z.string(), z.string()).default({}),
    tensorParallel: z.number().int().positive().default(1),
    lmevalTasks: z
      .array(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected an lm_eval task name (letters, digits, _ . -)'))
      .optional()
      .describe('lm_eval tasks run on every checkpoint of this model (vllm engine), ingested beside our suites'),
  })
  .strict();

const OverridesSchema = z
  .object({
    groupSize: groupSize.optional().describe('group size for integer schemes'),
    symmetric: z.boolean().optional().describe('integer schemes: symmetric (true) or asymmetric'),
    schemes: z
      .record(schemeName, z.object({ groupSize: groupSize.optional(), symmetric: z.boolean().optional() }).strict())
      .optional()
      .describe('per-scheme overrides, win over groupSize/symmetric'),
    recipe: RecipeValuesSchema.partial().optional().describe('recipe values that win over every named recipe'),
    seqlenCap: z.number().int().positive().optional().describe('cap on calibration and evaluation sequence length'),
    vllm: VllmSchema.optional(),
  })
  .strict();
export type ModelOverrides = z.infer<typeof OverridesSchema>;

/**
 * Where a model's jobs run on a Slurm cluster (`bench run --executor slurm`); the CLI flags
 * of the same names win. Values land in `#SBATCH` lines, so they are restricted to
 * characters that need no quoting there.
 */
export const SlurmSettingsSchema = z
  .object({
    partition: z.string().regex(/^[A-Za-z0-9_.,-]+$/, 'expected a partition name (letters, digits, _ . , -)').optional(),
    account: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected an account name (letters, digits, _ . -)').optional(),
    time: z
      .string()
      .regex(/^(\d+-)?\d+(:\d{1,2}){0,2}$/, 'expected a Slurm time limit: MM, HH:MM:SS or D-HH:MM:SS')
      .optional()
      .describe('time limit per task, e.g. 04:00:00'),
    gpusPerTask: z
      .union([z.number().int().min(0), z.string().regex(/^[A-Za-z0-9_]+:\d+$/, 'expected a count or TYPE:COUNT')])
      .optional()
      .describe('GPUs per task (--gpus-per-task): a count or TYPE:COUNT'),
    maxParallel: z.number().int().positive().optional().describe('tasks of one job array running at once (--array=...%K)'),
    sbatchArgs: z
      .array(z.string().regex(/^--?[A-Za-z][A-Za-z0-9-]*(=[A-Za-z0-9_.,:+@%=\/-]+)?$/, "expected one sbatch option such as '--mem=64G' (no spaces or quotes)"))
      .optional()
      .describe('further sbatch options, one each, e.g. ["--mem=64G", "--cpus-per-task=8"]'),
  })
  .strict();
export type SlurmSettings = z.infer<typeof SlurmSettingsSchema>;

const ModelObject = z
  .object({
    source: z
      .string()
      .regex(/^(hf:[^/\s@]+\/[^/\s@]+|\.{1,2}\/.+|\/.+)$/, "expected './local/dir' or 'hf:ORG/NAME'")
      .describe("'./models/NAME' (relative to models.json) or 'hf:ORG/NAME'"),
    revision: z.string().min(1).optional().describe('hf sources: pinned commit hash'),
    note: z.string().optional(),
    family: z.enum(['llama', 'mistral', 'qwen2', 'qwen3']),
    engines: z.array(z.enum(ENGINES)).min(1),
    calibration: CalibrationSchema.optional(),
    overrides: OverridesSchema.default({}),
    slurm: SlurmSettingsSchema.optional().describe('how this model\'s jobs are submitted by --executor slurm'),
  })
  .strict();
const ModelSchema = ModelObject.superRefine((m, ctx) => {
    const hf = m.source.startsWith('hf:');
    if (hf && !m.revision) ctx.addIssue({ code: 'custom', path: ['revision'], message: "hf sources need a 'revision' (a commit hash)" });
    if (!hf && m.revision) ctx.addIssue({ code: 'custom', path: ['revision'], message: 'local sources are hashed by content; remove revision' });
  });
export type ModelEntry = z.infer<typeof ModelSchema>;

const MatrixSchema = z
  .object({
    models: z.array(alias).min(1).describe('models run when none are named'),
    schemes: z.array(schemeName).min(1),
    methods: z.array(z.enum(METHODS)).min(1),
    recipes: z.array(z.string()).min(1),
    suites: z.array(z.string().min(1)).min(1),
  })
  .strict();

const FileObject = z
  .object({
    $schema: z.string().optional(),
    models: z.record(alias, ModelSchema),
    recipes: z.record(z.string().regex(/^[a-z0-9_-]+$/), RecipeValuesSchema),
    matrix: MatrixSchema,
  })
  .strict();
export const ModelsFileSchema = FileObject.superRefine((f, ctx) => {
    const aliases = Object.keys(f.models);
    f.matrix.models.forEach((m, i) => {
      if (!f.models[m]) ctx.addIssue({ code: 'custom', path: ['matrix', 'models', i], message: `unknown model '${m}'; ${didYouMean(m, aliases)}` });
    });
    const recipes = Object.keys(f.recipes);
    f.matrix.recipes.forEach((r, i) => {
      if (!f.recipes[r]) ctx.addIssue({ code: 'custom', path: ['matrix', 'recipes', i], message: `unknown recipe '${r}'; ${didYouMean(r, recipes)}` });
    });
  });
export type ModelsFile = z.infer<typeof ModelsFileSchema>;

/** A model entry with its alias and its source resolved against the models.json location. */
export interface ResolvedModel extends ModelEntry {
  alias: string;
  /** Absolute directory for local sources; null for hf sources. */
  localDir: string | null;
  /** `ORG/NAME` for hf sources; null for local ones. */
  hfRepo: string | null;
  /** Absolute calibration text file, if the calibration is a local path. */
  calibrationPath: string | null;
}

export interface LoadedModels {
  path: string;
  file: ModelsFile;
  models: Map<string, ResolvedModel>;
}

/** Parse and validate a models.json text; `where` names the file in messages. */
export function parseModels(text: string, where: string, baseDir: string): LoadedModels {
  const raw = parseJson(text, where, 'fix the syntax');
  const res = ModelsFileSchema.safeParse(raw);
  if (!res.success) {
    const issue = res.error.issues[0];
    const path = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
    const more = res.error.issues.length > 1 ? ` (and ${res.error.issues.length - 1} more problem(s))` : '';
    throw new UserError(`${where}: ${path}: ${describeIssue(issue, raw)}${more}`);
  }
  const file = res.data;
  const models = new Map<string, ResolvedModel>();
  for (const [name, m] of Object.entries(file.models)) {
    const hf = m.source.startsWith('hf:');
    const cal = m.calibration && 'path' in m.calibration ? m.calibration.path : null;
    models.set(name, {
      ...m,
      alias: name,
      localDir: hf ? null : isAbsolute(m.source) ? m.source : resolve(baseDir, m.source),
      hfRepo: hf ? m.source.slice(3) : null,
      calibrationPath: cal === null ? null : isAbsolute(cal) ? cal : resolve(baseDir, cal),
    });
  }
  return { path: where, file, models };
}

type Issue = z.core.$ZodIssue;

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const k of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** zod's messages, made to say what was expected and what was found. */
function describeIssue(issue: Issue, raw: unknown): string {
  switch (issue.code) {
    case 'invalid_type': {
      const expected = issue.expected === 'int' ? 'integer' : issue.expected;
      return `expected ${expected}, got ${show(valueAt(raw, issue.path))}`;
    }
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => show(v)).join(', ')}; got ${show(valueAt(raw, issue.path))}`;
    case 'unrecognized_keys':
      return issue.keys.map((k) => `unknown key '${k}'; ${didYouMean(k, KNOWN_KEYS)}`).join('; ');
    case 'invalid_key':
      return issue.issues.length ? `key ${show(issue.path[issue.path.length - 1])}: ${describeIssue(issue.issues[0], raw)}` : issue.message;
    default:
      return issue.message;
  }
}

/** Read and validate a models.json file. */
export function loadModels(path: string): LoadedModels {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UserError(`${path}: not found; pass --models-file or run from the project root`);
  }
  return parseModels(text, basename(path) === 'models.json' ? 'models.json' : path, dirname(resolve(path)));
}

/** Look a model alias up, with "did you mean" for unknown names. */
export function getModel(loaded: LoadedModels, name: string): ResolvedModel {
  const m = loaded.models.get(name);
  if (!m) throw new UserError(`unknown model '${name}' in ${loaded.path}; ${didYouMean(name, [...loaded.models.keys()])}`);
  return m;
}

/** The JSON Schema of models.json, for editors (committed as models.schema.json). */
export function modelsJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(ModelsFileSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return {
    ...schema,
    $id: 'https://lowbit-bench.invalid/models.schema.json',
    title: 'lowbit-bench models.json',
    description: `Model matrix for lowbit-bench. Schemes: ${schemeNames().join(', ')}. Generated by 'node --import tsx src/matrix/emit-schema.ts'; do not edit.`,
  };
}

/** Every key a models.json object may have, for did-you-mean on typos. */
const KNOWN_KEYS = [
  ...new Set([
    ...Object.keys(RecipeValuesSchema.shape),
    ...Object.keys(VllmSchema.shape),
    ...Object.keys(SlurmSettingsSchema.shape),
    ...Object.keys(OverridesSchema.shape),
    ...Object.keys(ModelObject.shape),
    ...Object.keys(MatrixSchema.shape),
    ...Object.keys(FileObject.shape),
    'path', 'hf', 'revision', 'split',
  ]),
];

/** The project's own models.json (beside package.json). */
export const PROJECT_MODELS_FILE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models.json');

/**
 * What single-model commands (`quantize`, `eval`, `serve`) accept for --model: a model
 * directory, or an alias from models.json with a local source. Returns the directory and
 * the alias's overrides (group size ...) when it was an alias.
 */
export function resolveModelArg(arg: string, modelsFile = PROJECT_MODELS_FILE): { dir: string; alias: string | null; overrides: ModelOverrides | null } {
  if (existsSync(join(arg, 'config.json'))) return { dir: resolve(arg), alias: null, overrides: null };
  if (!existsSync(modelsFile) || arg.includes('/') || arg.includes('\\'))
    throw new UserError(`${arg}: not a model directory (no config.json) and not a model alias; pass a Hugging Face model directory or an alias from models.json`);
  const m = getModel(loadModels(modelsFile), arg);
  if (!m.localDir) throw new UserError(`model '${arg}' comes from ${m.source}; download it (hf download ${m.hfRepo} --revision ${m.revision ?? 'main'}) and pass its directory`);
  return { dir: m.localDir, alias: arg, overrides: m.overrides ?? null };
}
