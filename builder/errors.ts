// A build's failures, and how its messages quote what they are about.

/** A failed build; at an instruction when `location` is given (shown then as `Dockerfile:12: message`). */
export class BuildError extends Error {
  readonly location?: { file: string; line: number };

  constructor(message: string, location?: { file: string; line: number }) {
    super(message);
    this.name = 'BuildError';
    this.location = location;
  }

  /** The one-line form, with the Dockerfile line first when there is one. */
  get summary(): string {
    return this.location ? `${this.location.file}:${this.location.line}: ${this.message}` : this.message;
  }
}

/** A mistake in the command line: reported in one line, with exit code 2. */
export class UsageError extends Error {}

/** Text as progress lines and messages quote it: at most 200 characters. */
export function abbreviate(text: string): string {
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
