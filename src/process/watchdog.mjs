// Watchdog for a scoring server's process group: if the orchestrator that started it dies
// without running its exit hooks (SIGKILL, crash), terminate the group so no GPU server is
// left running. Plain JS so it starts fast with bare node.
// argv: <orchestrator pid> <server process group id> <grace ms>
const [parent, pgid, grace] = process.argv.slice(2).map(Number);
const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
};
const kill = (sig) => {
  try {
    process.kill(-pgid, sig);
  } catch {
    /* group gone */
  }
};
const timer = setInterval(() => {
  if (!alive(-pgid)) process.exit(0);
  // Re-parenting (ppid changes) is the reliable sign the orchestrator is gone (no pid reuse).
  if (process.ppid !== parent || !alive(parent)) {
    clearInterval(timer);
    kill('SIGTERM');
    const deadline = Date.now() + grace;
    const t2 = setInterval(() => {
      if (!alive(-pgid)) process.exit(0);
      if (Date.now() >= deadline) {
        kill('SIGKILL');
        process.exit(0);
      }
    }, 100);
  }
}, 250);
