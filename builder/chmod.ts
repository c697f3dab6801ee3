// COPY --chmod and ADD --chmod: octal and symbolic modes, as BuildKit reads them.

export interface ModeChange {
  apply(mode: number, isDirectory: boolean): number;
  /** The mode of directories the copy creates: an octal --chmod's permission bits, else 0755. */
  created: number;
}

/**
 * --chmod as BuildKit reads it: octal up to 07777 for files and directories alike (and, without
 * the special bits, for the directories the copy creates), or a symbolic mode (chmod(1), BSD
 * setmode with umask 0) applied to each file and directory, while created directories get 0755.
 * Symlinks keep their mode.
 */
export function parseChmod(spec: string | undefined): ModeChange {
  if (spec === undefined || spec === '') return { apply: (mode) => mode, created: 0o755 };
  if (/^[0-9]/.test(spec)) {
    const value = /^[0-7]+$/.test(spec) ? parseInt(spec, 8) : NaN;
    if (!(value <= 0o7777)) throw new Error(`invalid chmod parameter: '${spec}'. it should be octal string and between 0 and 07777`);
    return { apply: () => value, created: value & 0o777 };
  }
  const commands = parseSymbolicMode(spec);
  if (!commands) throw new Error(`invalid chmod parameter: '${spec}': not an octal or symbolic mode`);
  return { apply: (mode, isDirectory) => applySymbolicMode(commands, mode, isDirectory), created: 0o755 };
}

interface ModeCommand {
  op: '+' | '-' | 'X' | 'u' | 'g' | 'o';
  bits: number;
  /** For the copy ops `u`, `g`, `o`: the classes written (shifts 6, 3, 0), and clear/set. */
  shifts?: number[];
  clear?: boolean;
  set?: boolean;
}

const WHO: Record<string, number> = { a: 0o6777, u: 0o4700, g: 0o2070, o: 0o0007 };

/** A port of BSD setmode's parser (as tonistiigi/dchapes-mode has it), with umask 0. */
function parseSymbolicMode(spec: string): ModeCommand[] | undefined {
  const commands: ModeCommand[] = [];
  const add = (op: string, who: number, arg: number | string): void => {
    if (op === '=') {
      commands.push({ op: '-', bits: who || 0o6777 });
      op = '+';
    }
    if (op === '+' || op === '-' || op === 'X') {
      commands.push({ op, bits: who ? who & (arg as number) : (arg as number) });
    } else {
      const shifts = who ? [6, 3, 0].filter((shift) => who & (0o4 << shift)) : [6, 3, 0];
      commands.push({ op: op as 'u' | 'g' | 'o', bits: ~0, shifts, clear: arg !== '+', set: arg !== '-' });
    }
  };
  let s = spec;
  for (;;) {
    let who = 0;
    while (s !== '' && 'augo'.includes(s[0]!)) {
      who |= WHO[s[0]]!;
      s = s.slice(1);
    }
    if (s === '') return undefined;
    do {
      const op = s[0]!;
      s = s.slice(1);
      if (op !== '+' && op !== '-' && op !== '=') return undefined;
      let equalDone = false;
      let perm = 0;
      let permX = 0;
      who &= ~0o1000;
      for (;; s = s.slice(1)) {
        const c = s[0];
        const notOnlyOther = who === 0 || (who & ~0o007) !== 0;
        if (c === 'r') perm |= 0o444;
        else if (c === 'w') perm |= 0o222;
        else if (c === 'x') perm |= 0o111;
        else if (c === 'X') permX = op === '+' ? 0o111 : permX;
        else if (c === 's') perm |= notOnlyOther ? 0o6000 : 0;
        else if (c === 't') {
          if (notOnlyOther) {
            who |= 0o1000;
            perm |= 0o1000;
          }
        } else if (c === 'u' || c === 'g' || c === 'o') {
          if (perm) add(op, who, perm);
          perm = 0;
          if (op === '=') equalDone = true;
          if (permX) add('X', who, permX);
          permX = 0;
          add(c, who, op);
        } else {
          if (perm || (op === '=' && !equalDone)) add(op, who, perm);
          if (permX) add('X', who, permX);
          break;
        }
      }
    } while (s !== '' && s[0] !== ',');
    if (s === '') return commands;
    s = s.slice(1);
  }
}

function applySymbolicMode(commands: ModeCommand[], mode: number, isDirectory: boolean): number {
  const original = mode;
  for (const command of commands) {
    if (command.op === '+') mode |= command.bits;
    else if (command.op === '-') mode &= ~command.bits;
    else if (command.op === 'X') {
      if (original & 0o111 || isDirectory) mode |= command.bits;
    } else {
      const value = (mode >> { u: 6, g: 3, o: 0 }[command.op]) & 0o7;
      for (const shift of command.shifts!) {
        if (command.clear) mode &= ~(((command.set ? 0o7 : value) << shift) & command.bits);
        if (command.set) mode |= (value << shift) & command.bits;
      }
    }
  }
  return mode & 0o7777;
}
