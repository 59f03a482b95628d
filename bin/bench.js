#!/usr/bin/env node
// The `bench` command. Sources are TypeScript, run through tsx's loader, so a fresh
// clone needs no build step; worker threads inherit the loader through execArgv.
import { register } from 'tsx/esm/api';

register();
// `bench inspect x | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
