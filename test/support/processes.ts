// The processes a test started, found from the one it spawned down (/proc/PID/task/*/children):
// a test judges its own processes, never the whole machine's, where other builds may be running.
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** A process as seen once: a pid, and its start time, so that a pid given later to another process is not taken for it. */
export interface OwnProcess {
  pid: number;
  /** The command line, its arguments joined by spaces. */
  cmdline: string;
  /** Field 22 of /proc/PID/stat (clock ticks since boot). */
  startTime: string;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The fields of /proc/PID/stat after the command name (which may hold spaces): state first. */
function statFields(pid: number): string[] | undefined {
  const stat = read(`/proc/${pid}/stat`);
  return stat === undefined ? undefined : stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The pids of `pid`'s children, those of all its threads. */
export function childrenOf(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tasks.flatMap((task) => (read(`/proc/${pid}/task/${task}/children`) ?? '').split(' ').filter(Boolean).map(Number));
}

/** Every process descended from `pid` (children, theirs, and so on), not `pid` itself. */
export function descendantsOf(pid: number): OwnProcess[] {
  const found: OwnProcess[] = [];
  for (let queue = childrenOf(pid); queue.length > 0;) {
    const child = queue.shift()!;
    const fields = statFields(child);
    if (!fields || found.some((known) => known.pid === child)) continue;
    found.push({ pid: child, cmdline: (read(`/proc/${child}/cmdline`) ?? '').replaceAll('\0', ' ').trim(), startTime: fields[19]! });
    queue.push(...childrenOf(child));
  }
  return found;
}

/** Whether a process seen earlier still runs: the same pid, started at the same time, and not a zombie. */
export function stillRunning(seen: OwnProcess): boolean {
  const fields = statFields(seen.pid);
  return fields !== undefined && fields[0] !== 'Z' && fields[19] === seen.startTime;
}

/**
 * Waits until none of `seen` runs; returns those still running after `timeoutMs`. The kernel ends
 * them at once when they die with their parent: the wait is for a loaded machine to get round to it.
 */
export async function waitUntilGone(seen: OwnProcess[], timeoutMs = 60_000): Promise<OwnProcess[]> {
  const deadline = Date.now() + timeoutMs;
  let left = seen.filter(stillRunning);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(20);
    left = left.filter(stillRunning);
  }
  return left;
}
