// GitHub Actions' workflow commands: a build's lines folded into one ::group:: per stage, and a
// failure reported as an ::error annotation on the Dockerfile line that failed.
import { DockerfileError } from '../parser/index.ts';
import { BuildError } from './errors.ts';
import { Lines, type Progress } from './progress.ts';

export const inGithubActions = (): boolean => process.env.GITHUB_ACTIONS === 'true';

/**
 * Passes lines through, opening a group whenever the stage a line belongs to (`[name ...]`)
 * changes. Stages that run at the same time then fold into several groups each, never wrongly.
 */
export class StageGroups implements Progress {
  private readonly write: (text: string) => void;
  private current?: string;
  private readonly lines = new Lines((text) => this.line(text));

  constructor(write: (text: string) => void) {
    this.write = write;
  }

  line(text: string): void {
    const stage = /^\[([^\]\s]+)/.exec(text)?.[1];
    if (stage !== undefined && stage !== this.current) {
      if (this.current !== undefined) this.write('::endgroup::\n');
      this.write(`::group::${stage}\n`);
      this.current = stage;
    }
    this.write(`${text}\n`);
  }

  /** RUN output, which may end part-way through a line. */
  chunk(chunk: Buffer): void {
    this.lines.chunk(chunk);
  }

  end(): void {
    this.lines.end();
    if (this.current !== undefined) this.write('::endgroup::\n');
    this.current = undefined;
  }
}

/** Workflow command escaping: data, and (stricter) property values. */
const escapeData = (text: string): string => text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
const escapeProperty = (text: string): string => escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C');

/** `::error file=Dockerfile,line=12,col=5::message` for an error at a Dockerfile line, else a plain ::error. */
export function errorAnnotation(error: Error): string {
  const where = error instanceof DockerfileError
    ? { file: error.file, line: error.position.line, col: error.position.column, message: error.message }
    : error instanceof BuildError && error.location
      ? { ...error.location, message: error.message }
      : undefined;
  if (!where) return `::error::${escapeData(error.message)}`;
  const col = 'col' in where ? `,col=${where.col}` : '';
  return `::error file=${escapeProperty(where.file)},line=${where.line}${col}::${escapeData(where.message)}`;
}
