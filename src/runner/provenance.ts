/** Where and with what a run happened: versions, host, CPU. Recorded in run.json and every record. */
import { readFileSync } from 'node:fs';
import { cpus, hostname, totalmem } from 'node:os';
import { join } from 'node:path';

export interface HostInfo {
  hostname: string;
  platform: string;
  arch: string;
  cpu: string;
  cores: number;
  memoryMB: number;
}

export function hostInfo(): HostInfo {
  const c = cpus();
  return {
    hostname: hostname(),
    platform: process.platform,
    arch: process.arch,
    cpu: c[0]?.model?.trim() ?? 'unknown',
    cores: c.length,
    memoryMB: Math.round(totalmem() / 2 ** 20),
  };
}

const TRACKED = ['onnxruntime-node', '@huggingface/tokenizers', 'zod'];

/** Versions of the tool, Node and the dependencies that touch numbers. */
export function versions(root: string, tool: string): Record<string, string> {
  const out: Record<string, string> = { 'lowbit-bench': tool, node: process.versions.node };
  for (const name of TRACKED) {
    try {
      out[name] = String(JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version);
    } catch {
      // not installed here (e.g. a remote executor's node): leave it out rather than guess
    }
  }
  return out;
}

/** Samples resident memory while a job runs; the peak in MiB. */
export function startMemorySampler(intervalMs = 100): () => number {
  let peak = process.memoryUsage().rss;
  const t = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, intervalMs);
  t.unref();
  return () => {
    clearInterval(t);
    peak = Math.max(peak, process.memoryUsage().rss);
    return Math.round((peak / 2 ** 20) * 10) / 10;
  };
}
