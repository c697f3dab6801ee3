// How a build's lines are shown (--progress): plain lines; `rawjson`, one JSON object an event in
// the shape of BuildKit's SolveStatus (vertexes and logs), as buildx prints it; and `tty`, a live
// view that keeps a line for each running step with its timer and last lines of output, and
// prints each step once it ends. All of them read the lines the build writes: `[STAGE N/M] WHAT`
// starts step N, `[STAGE N/M] CACHED` or `DONE 1.20s` ends it, `[STAGE] text` is a step's output.
import { createHash } from 'node:crypto';

export interface Progress {
  line(text: string): void;
  /** A RUN's output, which may end part-way through a line. */
  chunk(chunk: Buffer): void;
  end(): void;
}

/** Splits chunks into lines for `line`. */
export class Lines {
  private partial = '';
  private readonly line: (text: string) => void;

  constructor(line: (text: string) => void) {
    this.line = line;
  }

  chunk(chunk: Buffer): void {
    const lines = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) this.line(line);
  }

  end(): void {
    if (this.partial) this.line(this.partial);
    this.partial = '';
  }
}

type Event =
  | { kind: 'start'; step: string; name: string }
  | { kind: 'end'; step: string; cached: boolean; status: string }
  | { kind: 'note'; step: string; text: string }
  | { kind: 'output'; step: string; text: string }
  | { kind: 'message'; text: string };

const STEP = /^\[([^\]]+?) (\d+)\/(\d+)\] (.*)$/s;
const OUTPUT = /^\[([^\]\s/]+(?: [^\]\s/]+)?)\] (.*)$/s;

/** Reads the build's lines as events; `[STAGE] text` belongs to the step of that stage now running. */
class Events {
  private readonly running = new Map<string, string>();
  private readonly started = new Set<string>();

  read(text: string): Event {
    const step = STEP.exec(text);
    if (step) {
      const [, stage, n, , what] = step as unknown as [string, string, string, string, string];
      const key = `${stage} ${n}`;
      if (!this.started.has(key)) {
        this.started.add(key);
        this.running.set(stage, key);
        return { kind: 'start', step: key, name: text };
      }
      if (what === 'CACHED' || what.startsWith('DONE ')) return { kind: 'end', step: key, cached: what === 'CACHED', status: what };
      return { kind: 'note', step: key, text: what };
    }
    const output = OUTPUT.exec(text);
    const owner = output && this.running.get(output[1]!);
    return owner ? { kind: 'output', step: owner, text: output[2]! } : { kind: 'message', text };
  }
}

/** `--progress=rawjson`: each event as BuildKit's SolveStatus JSON, a line each. */
export function rawJsonProgress(write: (text: string) => void): Progress {
  const events = new Events();
  const vertexes = new Map<string, { digest: string; name: string; started: string }>();
  const emit = (status: object): void => write(`${JSON.stringify(status)}\n`);
  const log = (vertex: string, stream: number, text: string): void => {
    emit({ logs: [{ vertex, stream, data: Buffer.from(`${text}\n`).toString('base64'), timestamp: new Date().toISOString() }] });
  };
  const lines = new Lines((text) => {
    const event = events.read(text);
    if (event.kind === 'start') {
      const vertex = { digest: `sha256:${createHash('sha256').update(event.step).digest('hex')}`, name: event.name, started: new Date().toISOString() };
      vertexes.set(event.step, vertex);
      emit({ vertexes: [vertex] });
    } else if (event.kind === 'end') {
      emit({ vertexes: [{ ...vertexes.get(event.step), completed: new Date().toISOString(), ...(event.cached ? { cached: true } : {}) }] });
    } else if (event.kind === 'note' || event.kind === 'output') {
      log(vertexes.get(event.step)!.digest, event.kind === 'output' ? 1 : 2, event.text);
    } else log('', 2, event.text);
  });
  return { line: (text) => lines.chunk(Buffer.from(`${text}\n`)), chunk: (chunk) => lines.chunk(chunk), end: () => lines.end() };
}

/** How many of a running step's last output lines the live view shows. */
const TAIL = 3;

/**
 * `--progress=tty`: finished steps and messages are printed once, as plain shows them; below them
 * the steps still running, each with its timer and last lines of output, are drawn again every
 * tenth of a second. `columns` cuts the live lines to the terminal's width.
 */
export function ttyProgress(write: (text: string) => void, columns: () => number): Progress {
  const events = new Events();
  const running = new Map<string, { name: string; since: number; tail: string[] }>();
  let drawn = 0;
  const fit = (text: string): string => (text.length > columns() ? `${text.slice(0, Math.max(0, columns() - 1))}…` : text);
  const draw = (printed: string[] = []): void => {
    const live: string[] = [];
    for (const { name, since, tail } of running.values()) {
      live.push(fit(`${name} ${((Date.now() - since) / 1000).toFixed(1)}s`));
      for (const line of tail) live.push(fit(`  ${line}`));
    }
    // Up over the last drawing, cleared to the end of the screen, then the new lines.
    write(`${drawn > 0 ? `\x1b[${drawn}A` : ''}\r\x1b[J${printed.map((line) => `${line}\n`).join('')}${live.map((line) => `${line}\n`).join('')}`);
    drawn = live.length;
  };
  // Redrawn while anything runs, for its timer: an idle view writes nothing.
  const timer = setInterval(() => running.size > 0 && draw(), 100);
  timer.unref();
  const lines = new Lines((text) => {
    const event = events.read(text);
    if (event.kind === 'start') running.set(event.step, { name: event.name, since: Date.now(), tail: [] });
    else if (event.kind === 'output') {
      const step = running.get(event.step);
      step?.tail.push(event.text.replace(/[\u0000-\u001f\u007f]/g, ' '));
      if (step && step.tail.length > TAIL) step.tail.shift();
    } else if (event.kind === 'end') {
      const step = running.get(event.step);
      running.delete(event.step);
      draw([`${step?.name ?? event.step} ${event.status}`]);
    } else if (event.kind === 'message' || event.kind === 'note') draw([text]);
  });
  return {
    line: (text) => lines.chunk(Buffer.from(`${text}\n`)),
    chunk: (chunk) => lines.chunk(chunk),
    end: () => {
      lines.end();
      clearInterval(timer);
      running.clear();
      draw();
    },
  };
}
