/**
 * Hugging Face Hub access: `hf:ORG/NAME@REVISION` sources resolve to snapshot folders of the
 * standard HF cache (shared with Python's huggingface_hub), downloading what is missing.
 */
export { hubCacheDir, offlineMode, readToken, type RepoRef, type RepoType } from './cache.ts';
export { modelFiles, resolveSnapshot, type ResolveOptions, type Snapshot } from './download.ts';
export { parseHfSpec } from './spec.ts';
