// A build's failures, and how its messages quote what they are about.

/**
 * A failed build; at an instruction when `location` is given (shown then as `Dockerfile:12:
 * message`, below the Dockerfile's lines around it when it has them).
 */
export class BuildError extends Error {
  readonly location?: { file: string; line: number; excerpt?: string };

  constructor(message: string, location?: { file: string; line: number; excerpt?: string }) {
    super(message);
    this.name = 'BuildError';
    this.location = location;
  }

  /** The one-line form, with the Dockerfile line first when there is one. */
  get summary(): string {
    return this.location ? `${this.location.file}:${this.location.line}: ${this.message}` : this.message;
  }
}

/** How many lines an excerpt shows before an instruction, and of it at most. */
const LINES_BEFORE = 2;
const LINES_OF_INSTRUCTION = 8;

/**
 * The Dockerfile's lines around an instruction (lines `start` to `end`, counted from 1), as
 * BuildKit shows them under a failed step: a little before it, then the instruction marked.
 */
export function sourceExcerpt(lines: readonly string[], start: number, end: number): string {
  const first = Math.max(1, start - LINES_BEFORE);
  const last = Math.min(lines.length, end, start + LINES_OF_INSTRUCTION - 1);
  const width = String(last).length;
  const rows: string[] = [];
  for (let n = first; n <= last; n++) {
    const text = abbreviate(lines[n - 1]!.replace(/[\u0000-\u001f\u007f]/g, ' '));
    rows.push(` ${String(n).padStart(width)} | ${n >= start ? '>>>' : '   '} ${text}`.trimEnd());
  }
  if (last < end) rows.push(` ${' '.repeat(width)} | ... (${end - last} more lines)`);
  return [' --------------------', ...rows, ' --------------------'].join('\n');
}

/** A mistake in the command line: reported in one line, with exit code 2. */
export class UsageError extends Error {}

/** The longest line hoist prints about a failure or a warning: longer than any path Linux opens whole. */
const LINE_LIMIT = 4096;
/** The most lines of one failure or warning. */
const LINES_LIMIT = 100;

/**
 * Text as hoist prints it about a failure or a warning: each line cut to LINE_LIMIT characters and
 * the whole to LINES_LIMIT lines, saying how much was left out. This is where every message that
 * can carry outside text (a path, a name, a registry's answer, an image's fields) is bounded.
 */
export function boundedLines(text: string): string {
  const lines = text.split('\n');
  const kept = lines.slice(0, LINES_LIMIT).map((line) => (line.length > LINE_LIMIT ? `${line.slice(0, LINE_LIMIT)}... (${line.length - LINE_LIMIT} more characters)` : line));
  if (lines.length > LINES_LIMIT) kept.push(`... (${lines.length - LINES_LIMIT} more lines)`);
  return kept.join('\n');
}

/** Text as progress lines and messages quote it: at most 200 characters. */
export function abbreviate(text: string): string {
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
