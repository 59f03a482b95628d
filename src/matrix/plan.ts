/**
 * Planning: expand models x schemes x methods x recipes x suites into jobs, each with a
 * content identity (identity.ts). Three kinds of job:
 *   quantize  one per (model, scheme, method, recipe); none for BF16 (the base model is
 *             its own checkpoint); RTN uses no recipe, so it gets one job whatever the
 *             recipes are, and a changed recipe never invalidates RTN results;
 *   base      one per (model, suite that compares against the unquantized model, e.g. kld):
 *             the base distribution, computed once and shared by every checkpoint;
 *   eval      one per (checkpoint, suite); depends on its quantize job and base job.
 * Jobs are listed in dependency order.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError, didYouMean } from '../errors.ts';
import { bitsPerWeight, getScheme, withOverrides, type Scheme } from '../quant/schemes.ts';
import { hashDir, hashFile, identityHash, shortId } from './identity.ts';
import {
  ENGINES,
  METHODS,
  getModel,
  loadModels,
  type EngineName,
  type LoadedModels,
  type MethodName,
  type RecipeValues,
  type ResolvedModel,
} from './models.ts';

export interface PlanOptions {
  /** Project root; models.json and suites/ are looked up here. Default: cwd. */
  root?: string;
  modelsFile?: string;
  suitesDir?: string;
  /** Subsets of the matrix; each defaults to models.json's `matrix` section. */
  models?: string[];
  schemes?: string[];
  methods?: string[];
  recipes?: string[];
  suites?: string[];
  /** Engine to score with; default: each model's first engine. */
  engine?: EngineName;
  /** Seed for calibration sampling and bootstrap resampling. */
  seed?: number;
  /** Tool version folded into every identity; default: package.json's version. */
  toolVersion?: string;
  /** Score only the first N items of each suite (smoke runs); part of every eval and base identity. */
  limit?: number;
}

export interface SuiteInfo {
  name: string;
  file: string;
  /** Hash of the suite JSON and every data file it names. */
  hash: string;
  /** Data files the suite names, with their sha256. */
  files: Record<string, string>;
  /** sha256 identity of the data files alone (`dataSha256(files)`): what a result's coverage names. */
  dataSha256: string;
  /** Where each of `files` was found (absolute path of a file or directory). */
  paths: Record<string, string>;
  /** The suite compares against the unquantized model's distribution (kld). */
  needsBase: boolean;
}

export interface ModelInfo {
  alias: string;
  model: ResolvedModel;
  /** What identifies the weights: file hashes of a local dir, or repo + revision. */
  identity: Record<string, unknown>;
  engine: EngineName;
}

interface JobCommon {
  id: string;
  model: string;
  /** Ids of jobs that must finish first. */
  deps: string[];
  /** The description hashed into `id` (kept for provenance and debugging). */
  identity: Record<string, unknown>;
  label: string;
}

export interface QuantizeJob extends JobCommon {
  kind: 'quantize';
  scheme: Scheme;
  method: MethodName;
  recipe: string | null;
  recipeValues: RecipeValues | null;
  calibration: Record<string, unknown> | null;
  seed: number;
  /** Nominal bits per weight of the scheme (scales included); the quantizer may report the exact value. */
  bitsPerWeight: number;
}

export interface BaseJob extends JobCommon {
  kind: 'base';
  suite: SuiteInfo;
  engine: EngineName;
  seed: number;
}

export interface EvalJob extends JobCommon {
  kind: 'eval';
  scheme: Scheme;
  method: MethodName | 'base';
  recipe: string | null;
  recipeValues: RecipeValues | null;
  suite: SuiteInfo;
  engine: EngineName;
  seed: number;
  /** The quantize job whose checkpoint is scored; null = the unquantized model. */
  quantizeJob: string | null;
  /** The base-distribution job this suite compares against; null if none. */
  baseJob: string | null;
  bitsPerWeight: number;
  seqlenCap: number | null;
}

export type Job = QuantizeJob | BaseJob | EvalJob;

export interface Plan {
  toolVersion: string;
  root: string;
  modelsFile: string;
  seed: number;
  /** `--limit`: items scored per suite; null = every item. */
  limit: number | null;
  models: ModelInfo[];
  schemes: string[];
  methods: MethodName[];
  recipes: string[];
  suites: SuiteInfo[];
  jobs: Job[];
  warnings: string[];
}

/** Version of an installed dependency of the tool, or null. */
function depVersion(name: string): string | null {
  try {
    const pkg = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', name, 'package.json');
    return String(JSON.parse(readFileSync(pkg, 'utf8')).version);
  } catch {
    return null;
  }
}

export function toolVersion(): string {
  const pkg = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
  return String(JSON.parse(readFileSync(pkg, 'utf8')).version);
}

/** Nominal storage bits per weight of a scheme, scales included (the quantizer may report the exact value). */
export const nominalBitsPerWeight = bitsPerWeight;

const HEX40 = /^[0-9a-f]{40}$/;

/** Expand the matrix into jobs. Throws UserError for unknown names or missing inputs. */
export function planRun(options: PlanOptions = {}): Plan {
  const root = resolve(options.root ?? process.cwd());
  const modelsFile = resolve(root, options.modelsFile ?? 'models.json');
  const suitesDir = resolve(root, options.suitesDir ?? 'suites');
  const loaded = loadModels(modelsFile);
  const m = loaded.file.matrix;
  const tool = options.toolVersion ?? toolVersion();
  const seed = options.seed ?? 42;
  if (!Number.isInteger(seed) || seed < 0) throw new UserError(`--seed must be a non-negative integer, got ${seed}`);
  const limit = options.limit ?? null;
  if (limit !== null && (!Number.isSafeInteger(limit) || limit < 1)) throw new UserError(`--limit must be a positive integer, got ${limit}`);
  const warnings: string[] = [];

  const schemes = unique(options.schemes ?? m.schemes).map((s) => getScheme(s).name);
  const methods = unique(options.methods ?? m.methods).map((x) => {
    if (!(METHODS as readonly string[]).includes(x)) throw new UserError(`unknown method '${x}'; ${didYouMean(x, [...METHODS])}`);
    return x as MethodName;
  });
  const recipes = unique(options.recipes ?? m.recipes).map((r) => {
    if (!loaded.file.recipes[r]) throw new UserError(`unknown recipe '${r}'; ${didYouMean(r, Object.keys(loaded.file.recipes))}`);
    return r;
  });
  if (options.engine && !(ENGINES as readonly string[]).includes(options.engine))
    throw new UserError(`unknown engine '${options.engine}'; ${didYouMean(options.engine, [...ENGINES])}`);
  const models = unique(options.models ?? m.models).map((a) => describeModel(loaded, a, options.engine, warnings));
  const suites = unique(options.suites ?? m.suites).map((s) => describeSuite(suitesDir, root, s));

  const jobs: Job[] = [];
  for (const mi of models) {
    const model = mi.model;
    const cap = model.overrides.seqlenCap ?? null;
    // Engine settings that can move numbers. vLLM's own version is known only on the GPU host
    // and is recorded in provenance there; onnxruntime's is pinned in package.json.
    const engineConf = mi.engine === 'vllm' ? { vllm: model.overrides.vllm ?? null } : { onnxruntime: depVersion('onnxruntime-node') };
    const baseJobs = new Map<string, BaseJob>();
    for (const suite of suites.filter((s) => s.needsBase)) {
      // --limit changes which texts the distribution covers, so it is part of the identity.
      const identity = { kind: 'base', tool, model: mi.identity, suite: suite.hash, engine: mi.engine, ...engineConf, seqlenCap: cap, seed, limit };
      const job: BaseJob = {
        kind: 'base', id: identityHash(identity), model: mi.alias, deps: [], identity, suite, engine: mi.engine, seed,
        label: `${mi.alias} base distribution for ${suite.name}`,
      };
      baseJobs.set(suite.name, job);
      jobs.push(job);
    }
    for (const schemeName of schemes) {
      const base = getScheme(schemeName);
      const isBase = base.weights.kind === 'none' && base.activations.kind === 'none';
      const scheme = isBase ? base : resolveScheme(base, model);
      type Variant = { method: MethodName | 'base'; recipe: string | null };
      const variants: Variant[] = isBase
        ? [{ method: 'base', recipe: null }]
        : methods.flatMap((method): Variant[] => (method === 'rtn' ? [{ method, recipe: null }] : recipes.map((recipe) => ({ method, recipe }))));
      for (const v of variants) {
        let q: QuantizeJob | null = null;
        let recipeValues: RecipeValues | null = null;
        if (v.method !== 'base') {
          recipeValues = v.recipe === null ? null : resolveRecipe(loaded, v.recipe, model);
          const calibration = v.method === 'autoround' ? describeCalibration(model, warnings) : null;
          const identity = {
            kind: 'quantize', tool, model: mi.identity,
            scheme: { weights: scheme.weights, activations: scheme.activations },
            method: v.method, recipe: recipeValues, calibration,
            // RTN is deterministic; only calibrated methods depend on the seed.
            seed: v.method === 'rtn' ? null : seed,
          };
          q = {
            kind: 'quantize', id: identityHash(identity), model: mi.alias, deps: [], identity, scheme, method: v.method,
            recipe: v.recipe, recipeValues, calibration, seed, bitsPerWeight: nominalBitsPerWeight(scheme),
            label: `${mi.alias} ${scheme.name} ${v.method}${v.recipe ? `/${v.recipe}` : ''}`,
          };
          jobs.push(q);
        }
        for (const suite of suites) {
          const b = suite.needsBase ? baseJobs.get(suite.name)! : null;
          const identity = {
            kind: 'eval', tool, checkpoint: q ? q.id : { base: mi.identity }, suite: suite.hash, engine: mi.engine, ...engineConf,
            seqlenCap: cap, seed, base: b ? b.id : null,
            // The item set: a --limit 5 result is never handed to a full run, nor the other way round.
            limit,
            // On vLLM the first suite's job also carries the model's lm_eval tasks (runner/vllm.ts).
            ...(mi.engine === 'vllm' ? { lmeval: suite === suites[0] ? (model.overrides.vllm?.lmevalTasks ?? []) : [] } : {}),
          };
          jobs.push({
            kind: 'eval', id: identityHash(identity), model: mi.alias, deps: [q?.id, b?.id].filter((x): x is string => !!x), identity,
            scheme, method: v.method, recipe: v.recipe, recipeValues, suite, engine: mi.engine, seed,
            quantizeJob: q ? q.id : null, baseJob: b ? b.id : null, bitsPerWeight: nominalBitsPerWeight(scheme), seqlenCap: cap,
            label: `${mi.alias} ${scheme.name} ${v.method}${v.recipe ? `/${v.recipe}` : ''} on ${suite.name}`,
          });
        }
      }
    }
  }
  return { toolVersion: tool, root, modelsFile, seed, limit, models, schemes, methods, recipes, suites, jobs, warnings: unique(warnings) };
}

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

function describeModel(loaded: LoadedModels, alias: string, engine: EngineName | undefined, warnings: string[]): ModelInfo {
  const model = getModel(loaded, alias);
  if (engine && !model.engines.includes(engine))
    throw new UserError(`model '${alias}' does not run on engine '${engine}' (models.json lists ${model.engines.join(', ')}); pick another --engine or model`);
  let identity: Record<string, unknown>;
  if (model.localDir) {
    if (!existsSync(model.localDir))
      throw new UserError(`model '${alias}': ${model.source} does not exist; create it (for stories260k run the converter in scripts/) or fix models.json`);
    identity = { source: 'local', files: hashDir(model.localDir) };
  } else {
    if (!HEX40.test(model.revision!)) warnings.push(`model '${alias}' is not pinned (revision '${model.revision}'); results may change when the repo does`);
    identity = { source: 'hf', repo: model.hfRepo, revision: model.revision };
  }
  return { alias, model, identity, engine: engine ?? model.engines[0] };
}

function resolveScheme(scheme: Scheme, model: ResolvedModel): Scheme {
  const o = model.overrides;
  const per = Object.entries(o.schemes ?? {}).find(([k]) => k.toLowerCase() === scheme.name.toLowerCase())?.[1] ?? {};
  // Model-wide group size and symmetry apply to the integer schemes only; FP4 block sizes are fixed.
  const wide = scheme.weights.kind === 'int' ? { groupSize: o.groupSize, symmetric: o.symmetric } : {};
  const merged = { groupSize: per.groupSize ?? wide.groupSize, symmetric: per.symmetric ?? wide.symmetric };
  try {
    return withOverrides(scheme, merged);
  } catch (e) {
    throw new UserError(`models.json: models.${model.alias}.overrides: ${(e as Error).message}`);
  }
}

function resolveRecipe(loaded: LoadedModels, name: string, model: ResolvedModel): RecipeValues {
  const v: RecipeValues = { ...loaded.file.recipes[name], ...stripUndefined(model.overrides.recipe ?? {}) };
  const cap = model.overrides.seqlenCap;
  if (cap !== undefined && v.seqlen > cap) v.seqlen = cap;
  return v;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as Partial<T>;
}

function describeCalibration(model: ResolvedModel, warnings: string[]): Record<string, unknown> {
  const c = model.calibration;
  if (!c) throw new UserError(`model '${model.alias}' has no 'calibration' in models.json; autoround needs calibration text`);
  if ('path' in c) {
    if (!existsSync(model.calibrationPath!))
      throw new UserError(`model '${model.alias}': calibration file ${c.path} does not exist; create it or fix models.${model.alias}.calibration.path`);
    return { file: hashFile(model.calibrationPath!) };
  }
  if (!HEX40.test(c.revision)) warnings.push(`model '${model.alias}': calibration dataset ${c.hf} is not pinned (revision '${c.revision}')`);
  return { hf: c.hf, revision: c.revision, split: c.split };
}

/** List the suite names available in a suites directory. */
export function suiteNames(suitesDir: string): string[] {
  try {
    return readdirSync(suitesDir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
  } catch {
    return [];
  }
}

/**
 * Hash a suite: its JSON (canonical) plus every file or directory that a string value in
 * it names (relative to the suite's folder, else to the project root). The suite schema
 * belongs to suites.ts; this walks the JSON generically so that any data file a suite
 * names is part of its identity.
 */
export function describeSuite(suitesDir: string, root: string, name: string): SuiteInfo {
  const file = join(suitesDir, `${name}.json`);
  if (!existsSync(file)) {
    const known = suiteNames(suitesDir);
    throw new UserError(`unknown suite '${name}' (no ${file}); ${known.length ? didYouMean(name, known) : 'the suites folder is empty'}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message}); fix the suite file`);
  }
  const files: Record<string, string> = {};
  const paths: Record<string, string> = {};
  const visit = (v: unknown) => {
    if (typeof v === 'string') {
      // Only strings shaped like paths (a slash or a file extension); words like 'kld' are not.
      if (v.length === 0 || v.length > 4096 || v.includes('\n') || !(v.includes('/') || /\.[A-Za-z0-9]{1,8}$/.test(v))) return;
      for (const base of [suitesDir, root]) {
        const p = isAbsolute(v) ? v : resolve(base, v);
        if (!existsSync(p)) continue;
        const st = statSync(p);
        if (!st.isFile() && !(st.isDirectory() && p !== suitesDir && p !== root)) continue;
        files[v] = hashDataPath(p);
        paths[v] = p;
        return;
      }
    } else if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') Object.values(v).forEach(visit);
  };
  visit(json);
  return { name, file, hash: identityHash({ suite: json, files }), files, dataSha256: dataSha256(files), paths, needsBase: suiteNeedsBase(name, json) };
}

/** A data file's sha256, or a data directory's identity. */
function hashDataPath(p: string): string {
  return statSync(p).isDirectory() ? identityHash(hashDir(p)) : hashFile(p);
}

/** `dataSha256` of a suite's data files as they are on disk now (a job checks it before scoring). */
export function hashSuiteData(suite: SuiteInfo): string {
  return dataSha256(Object.fromEntries(Object.entries(suite.paths).map(([name, p]) => [name, hashDataPath(p)])));
}

/**
 * The identity of a suite's data: sha256 of the canonical JSON of { name as the suite
 * spells it: sha256 of the file } (a directory's entry is the identity of its files).
 * Equal for the same bytes on any machine; the suite's other settings are not in it.
 */
export function dataSha256(files: Record<string, string>): string {
  return identityHash(files);
}

/** A suite scored against the unquantized model's distribution (KL divergence). */
export function suiteNeedsBase(name: string, json: unknown): boolean {
  if (json && typeof json === 'object' && !Array.isArray(json)) {
    const o = json as Record<string, unknown>;
    if (typeof o.needsBase === 'boolean') return o.needsBase;
    for (const k of ['task', 'kind', 'type']) if (typeof o[k] === 'string' && (o[k] as string).toLowerCase() === 'kld') return true;
    if (Array.isArray(o.tasks) && o.tasks.some((t) => suiteNeedsBase('', t))) return true;
  }
  return name === 'kld' || name.endsWith('-kld');
}

/** Human-readable plan (what `bench run --dry-run` prints). `status` marks jobs as cached. */
export function formatPlan(plan: Plan, status?: ReadonlyMap<string, 'cached' | 'todo'>): string {
  const count = (k: Job['kind']) => plan.jobs.filter((j) => j.kind === k).length;
  const lines: string[] = [];
  const n = (x: number, w: string) => `${x} ${w}${x === 1 ? '' : 's'}`;
  lines.push(
    `plan: ${n(plan.models.length, 'model')} x ${n(plan.schemes.length, 'scheme')} x ${n(plan.methods.length, 'method')} x ` +
      `${n(plan.recipes.length, 'recipe')} x ${n(plan.suites.length, 'suite')} -> ${n(count('quantize'), 'quantize job')}, ` +
      `${n(count('base'), 'base job')}, ${n(count('eval'), 'eval job')} (tool ${plan.toolVersion}, seed ${plan.seed}${plan.limit !== null ? `, first ${plan.limit} items of each suite` : ''})`,
  );
  if (status) {
    const cached = plan.jobs.filter((j) => status.get(j.id) === 'cached').length;
    lines.push(`cache: ${cached} of ${plan.jobs.length} jobs already done; ${plan.jobs.length - cached} to run`);
  }
  for (const w of plan.warnings) lines.push(`warning: ${w}`);
  for (const mi of plan.models) {
    const src = mi.model.localDir ? `${mi.model.source}, ${Object.keys(mi.identity.files as object).length} files hashed` : `${mi.model.source}@${mi.model.revision}`;
    lines.push('', `${mi.alias} (${src}; engine ${mi.engine})`);
    for (const j of plan.jobs.filter((x) => x.model === mi.alias)) {
      const st = status ? (status.get(j.id) === 'cached' ? ' [cached]' : '') : '';
      let what: string;
      if (j.kind === 'quantize') {
        const w = j.scheme.weights;
        const g = w.kind === 'int' ? ` g${w.groupSize} ${w.symmetric ? 'sym' : 'asym'}` : '';
        const r = j.recipeValues ? ` iters=${j.recipeValues.iters} nsamples=${j.recipeValues.nsamples} seqlen=${j.recipeValues.seqlen}` : '';
        what = `${j.scheme.name} ${j.method}${j.recipe ? `/${j.recipe}` : ''}${g}${r} (${j.bitsPerWeight.toFixed(3)} bpw)`;
      } else if (j.kind === 'base') {
        what = `base distribution for ${j.suite.name}`;
      } else {
        what = `${j.scheme.name} ${j.method}${j.recipe ? `/${j.recipe}` : ''} on ${j.suite.name}`;
      }
      lines.push(`  ${j.kind.padEnd(8)} ${shortId(j.id)}  ${what}${st}`);
    }
  }
  return lines.join('\n') + '\n';
}
