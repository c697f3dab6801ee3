/** A position in a Dockerfile: 1-based line and column. */
export interface Position {
  line: number;
  column: number;
}

export interface SourceRange {
  start: Position;
  end: Position;
}

/** A user's mistake in a Dockerfile, reported as `FILE:LINE:COL: message` with the line shown. */
export class DockerfileError extends Error {
  readonly file: string;
  readonly position: Position;
  readonly sourceLine: string | undefined;

  constructor(message: string, file: string, position: Position, sourceLine?: string) {
    super(message);
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
    const caret = ' '.repeat(Math.max(0, this.position.column - 1)) + '^';
    return `${this.summary}\n ${gutter} | ${this.sourceLine}\n ${pad} | ${caret}`;
  }
}

/** An error at a position of a Dockerfile whose source lines are known. */
export function sourceError(source: { file: string; lines: readonly string[] }, position: Position, message: string): never {
  throw new DockerfileError(message, source.file, position, source.lines[position.line - 1]);
}
