// For tests that hold on a loaded machine (other suites and builds beside them): they wait for the
// thing they wait for, not for a fixed time, and they judge how much work a computation took by
// the CPU time of the thread that ran it, which other processes do not stretch, never by the clock.
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `condition` until it holds. `timeoutMs` only stops a hang: it is far above what any load
 * delays a condition by, and passing it fails with `what`.
 */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what}: not seen within ${timeoutMs / 1000} s`);
    await sleep(20);
  }
}

/** The CPU time (user and system) this thread has used so far, in milliseconds. */
export function threadCpuMs(): number {
  const { user, system } = process.threadCpuUsage();
  return (user + system) / 1000;
}

/** Runs `run`, returning its result and the CPU time this thread spent in it, in milliseconds. */
export function cpuTimed<T>(run: () => T): { result: T; cpuMs: number } {
  const before = threadCpuMs();
  const result = run();
  return { result, cpuMs: threadCpuMs() - before };
}
