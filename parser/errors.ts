/** A position in a Dockerfile: 1-based line and column. */
export interface Position {
  line: number;
  column: number;
}

export interface SourceRange {
  start: Position;
  end: Position;
}

/** Messages quote the Dockerfile, which may hold megabytes on a line: longer ones keep their start and end. */
const MAX_MESSAGE_LENGTH = 1000;
/** How much of the offending line is shown around the column. */
const SHOWN_LINE_LENGTH = 120;
/** Line breaks and other control characters, which are shown escaped: the message stays on its line, the terminal in its state. */
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/g;

/** A user's mistake in a Dockerfile, reported as `FILE:LINE:COL: message` with the line shown. */
export class DockerfileError extends Error {
  readonly file: string;
  readonly position: Position;
  readonly sourceLine: string | undefined;

  constructor(message: string, file: string, position: Position, sourceLine?: string) {
    super(shorten(visible(message), MAX_MESSAGE_LENGTH));
    this.name = 'DockerfileError';
    this.file = file;
    this.position = position;
    this.sourceLine = sourceLine;
  }

  /** The one-line form: `Dockerfile:12:5: unknown instruction: RUNN (did you mean RUN?)`. */
  get summary(): string {
    return `${this.file}:${this.position.line}:${this.position.column}: ${this.message}`;
  }

  /** The summary plus the offending line with a caret under the column. */
  format(): string {
    if (this.sourceLine === undefined) return this.summary;
    const gutter = String(this.position.line);
    const pad = ' '.repeat(gutter.length);
    // A long line is shown from a little before the column, with `...` where it is cut.
    const column = Math.max(0, this.position.column - 1);
    const start = this.sourceLine.length > SHOWN_LINE_LENGTH ? Math.max(0, column - SHOWN_LINE_LENGTH / 2) : 0;
    const before = start > 0 ? '...' : '';
    const after = this.sourceLine.length > start + SHOWN_LINE_LENGTH ? '...' : '';
    const shown = before + visible(this.sourceLine.slice(start, start + SHOWN_LINE_LENGTH)) + after;
    const caret = ' '.repeat(before.length + visible(this.sourceLine.slice(start, column)).length) + '^';
    return `${this.summary}\n ${gutter} | ${shown}\n ${pad} | ${caret}`;
  }
}

function visible(text: string): string {
  return text.replace(CONTROL, (ch) => (ch === '\n' ? '\\n' : ch === '\r' ? '\\r' : `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** `text` cut to about `max` characters in the middle, saying how much was left out. */
function shorten(text: string, max: number): string {
  if (text.length <= max) return text;
  const keep = Math.floor(max / 2);
  return `${text.slice(0, keep)}...(${text.length - 2 * keep} characters)...${text.slice(-keep)}`;
}

/** An error at a position of a Dockerfile whose source lines are known. */
export function sourceError(source: { file: string; lines: readonly string[] }, position: Position, message: string): never {
  throw new DockerfileError(message, source.file, position, source.lines[position.line - 1]);
}
