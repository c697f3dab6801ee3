// Shell-word lexer for Dockerfile instructions. It follows BuildKit's
// frontend/dockerfile/shell package (lex.go) as a Linux builder runs it, quirks
// included, so a word expands here as it does under `docker build`. It is not
// a shell: no globbing, no command substitution, no `$(...)`.

export type Env = ReadonlyMap<string, string>;

export class ShellExpansionError extends Error {}

// One of hoist's limits below was reached (BuildKit has none: Go grows its stack and strings).
class ExpansionLimitError extends ShellExpansionError {}

/** How deep `${...}` may nest in one word: each level is a level of recursion here. */
export const MAX_NESTING = 256;
/** The longest text one word may expand to: variables that double each other reach gigabytes in a few lines. */
export const MAX_EXPANSION_LENGTH = 16 * 1024 * 1024;

export interface LexOptions {
  escape?: string; // '\\' (default) or '`' (from the Dockerfile escape directive)
  processQuotes?: boolean; // default true; false = BuildKit's SkipProcessQuotes (used for heredoc bodies): quotes stay literal, only $ expansion and escapes apply
}

type Lookup = (name: string) => string | undefined;

const EOF = '';
// Go's unicode.IsSpace; JS's \s differs (it has U+FEFF and lacks U+0085).
export const SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
const DIGITS = /\p{Nd}+/uy;
const NAME = /[\p{L}\p{Nd}_]*/uy;
const SPECIAL_PARAMS = new Set(['@', '*', '#', '?', '-', '$', '!']); // $0 is read as a positional
const HEREDOC = /<<[ \t\r]*/y;
const NEWLINE = 0x0a;

// Words of an expandWords result. Unquoted text splits on whitespace; quoted or
// escaped text is added raw and never splits. Deliberately unlike BuildKit since
// dockerfile/1.9.0, whose nested ${V:-w} lexer resets the shared word buffer and
// drops the text before it (`x${U:-p}` gives `p`): hoist keeps it, as 1.8 did.
class Words {
  list: string[] = [];
  word = '';

  add(text: string): void {
    for (const ch of text) {
      if (!SPACE.test(ch)) this.word += ch;
      else if (this.word !== '') {
        this.list.push(this.word);
        this.word = '';
      }
    }
  }

  addRaw(text: string): void {
    this.word += text;
  }

  finish(): string[] {
    if (this.word !== '') this.list.push(this.word);
    return this.list;
  }
}

class Lexer {
  readonly src: string;
  readonly escape: string;
  readonly quotes: boolean;
  readonly lookup: Lookup;
  // Only the names are wanted: values can make a pattern invalid, so patterns are not applied.
  readonly namesOnly: boolean;
  pos = 0;
  rawEscapes = false; // keep escape characters in the output (pattern words)
  depth = 0; // of ${...} being read

  constructor(word: string, options: LexOptions, lookup: Lookup, namesOnly: boolean) {
    this.src = stripBOM(word);
    this.escape = options.escape ?? '\\';
    this.quotes = options.processQuotes ?? true;
    this.lookup = lookup;
    this.namesOnly = namesOnly;
  }

  peek(): string {
    return this.src[this.pos] ?? EOF;
  }

  // One code point, so that error messages show whole characters.
  nextChar(): string {
    const cp = this.src.codePointAt(this.pos);
    if (cp === undefined) return EOF;
    const ch = String.fromCodePoint(cp);
    this.pos += ch.length;
    return ch;
  }

  // Reads up to `stop` (consumed), or to the end of the input when stop is EOF.
  until(stop: string, rawEscapes: boolean, words?: Words): string {
    const outer = this.rawEscapes;
    this.rawEscapes = rawEscapes;
    let out = '';
    for (let ch = this.peek(); ch !== EOF; ch = this.peek()) {
      if (ch === stop) {
        this.pos++;
        this.rawEscapes = outer;
        return out;
      }
      if (ch === '$') {
        const value = this.dollar();
        out = grown(out, value);
        words?.add(value);
      } else if (this.quotes && (ch === "'" || ch === '"')) {
        const text = ch === "'" ? this.singleQuoted() : this.doubleQuoted();
        out += text;
        words?.addRaw(text);
      } else if (ch === '<' && this.src[this.pos + 1] === '<') {
        // BuildKit keeps the blanks after `<<` in the word, so that a heredoc
        // marker written as `<< EOF` stays one word.
        HEREDOC.lastIndex = this.pos;
        const text = HEREDOC.exec(this.src)![0];
        this.pos += text.length;
        out += text;
        words?.addRaw(text);
      } else if (ch === this.escape) {
        this.pos++;
        const escaped = this.peek();
        if (escaped === EOF) break; // a trailing escape is dropped
        this.pos++;
        const text = this.rawEscapes ? ch + escaped : escaped;
        out += text;
        words?.addRaw(text);
      } else {
        this.pos++;
        out += ch;
        words?.add(ch);
      }
    }
    if (stop !== EOF) throw new ShellExpansionError(`unexpected end of statement while looking for matching ${stop}`);
    return out;
  }

  // A word inside ${...}: running out of input there reports the missing delimiter.
  nested(stop: string, rawEscapes: boolean): string {
    try {
      return this.until(stop, rawEscapes);
    } catch (e) {
      if (e instanceof ShellExpansionError && !(e instanceof ExpansionLimitError) && this.pos >= this.src.length) {
        throw new ShellExpansionError(stop === '/' ? "syntax error: missing '/' in ${}" : "syntax error: missing '}'");
      }
      throw e;
    }
  }

  singleQuoted(): string {
    const end = this.src.indexOf("'", this.pos + 1);
    if (end < 0) {
      this.pos = this.src.length;
      throw new ShellExpansionError('unexpected end of statement while looking for matching single-quote');
    }
    const text = this.src.slice(this.pos + 1, end);
    this.pos = end + 1;
    return text;
  }

  // Inside double quotes the escape character only escapes `"`, `$` and itself;
  // before anything else it stays.
  doubleQuoted(): string {
    this.pos++;
    let out = '';
    for (;;) {
      const ch = this.peek();
      if (ch === EOF) throw new ShellExpansionError('unexpected end of statement while looking for matching double-quote');
      if (ch === '"') {
        this.pos++;
        return out;
      }
      if (ch === '$') {
        out = grown(out, this.dollar());
        continue;
      }
      this.pos++;
      if (ch === this.escape) {
        if (this.rawEscapes) out += ch;
        const next = this.peek();
        if (next === '"' || next === '$' || next === this.escape) {
          this.pos++;
          out += next;
          continue;
        }
        if (next === EOF) continue;
      }
      out += ch;
    }
  }

  dollar(): string {
    this.pos++;
    if (this.peek() !== '{') {
      const name = this.name();
      return name === '' ? '$' : (this.lookup(name) ?? '');
    }
    this.pos++;
    if (++this.depth > MAX_NESTING) throw new ExpansionLimitError(`\${...} nested more than ${MAX_NESTING} deep (hoist's limit)`);
    const value = this.braced();
    this.depth--;
    return value;
  }

  // What a ${...} gives, read from after its brace.
  braced(): string {
    const first = this.peek();
    if (first === EOF) throw new ShellExpansionError("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new ShellExpansionError('syntax error: bad substitution');
    const name = this.name();
    const op = this.nextChar();
    switch (op) {
      case '}':
        return this.lookup(name) ?? '';
      case '-':
      case '+':
      case '?':
        return this.conditional(name, op, false, this.nested('}', false));
      case ':': {
        const op2 = this.nextChar();
        if (op2 === '#' || op2 === '%') throw unsupported(op + op2);
        const word = this.nested('}', false);
        if (op2 === '-' || op2 === '+' || op2 === '?') return this.conditional(name, op2, true, word);
        throw unsupported(op + op2);
      }
      case '#':
      case '%': {
        let pattern = this.nested('}', true);
        const value = this.lookup(name) ?? '';
        if (this.namesOnly) return value;
        // `##` and `%%` remove the longest match, `#` and `%` the shortest.
        const longest = pattern.startsWith(op);
        if (longest) pattern = pattern.slice(1);
        return trimMatch(value, compilePattern(pattern), longest, op === '%');
      }
      case '/':
        return this.substitute(name);
      case EOF: // BuildKit says "unsupported modifier (\uFFFD)" here
        throw new ShellExpansionError("syntax error: missing '}'");
      default:
        throw unsupported(op);
    }
  }

  // ${V-w} ${V+w} ${V?w}; with a colon (${V:-w}...) an empty V counts as unset.
  conditional(name: string, op: string, colon: boolean, word: string): string {
    const value = this.lookup(name);
    const unset = value === undefined || (colon && value === '');
    if (op === '-') return unset ? word : value;
    if (op === '+') return unset ? '' : word;
    if (!unset) return value;
    const message = word || (value === undefined ? 'is not allowed to be unset' : 'is not allowed to be empty');
    throw new ShellExpansionError(`${name}: ${message}`);
  }

  // ${V/pattern/replacement} replaces the first match, ${V//pattern/replacement} all.
  substitute(name: string): string {
    const all = this.peek() === '/';
    if (all) this.pos++;
    const pattern = this.nested('/', true);
    const replacement = this.nested('}', true);
    const value = this.lookup(name) ?? '';
    if (this.namesOnly) return value;
    const steps = compilePattern(pattern);
    if (all) return replaceAll(value, steps, replacement);
    const match = new PatternMatcher(steps).find(value, 0, { anchored: false, longest: true });
    return match ? value.slice(0, match.start) + replacement + value.slice(match.end) : value;
  }

  // A variable name, a run of digits (positional, never set) or one special parameter.
  name(): string {
    let name = matchAt(DIGITS, this.src, this.pos);
    if (name === '') name = SPECIAL_PARAMS.has(this.peek()) ? this.peek() : matchAt(NAME, this.src, this.pos);
    this.pos += name.length;
    return name;
  }
}

function unsupported(modifier: string): ShellExpansionError {
  return new ShellExpansionError(`unsupported modifier (${modifier}) in substitution`);
}

function matchAt(sticky: RegExp, text: string, pos: number): string {
  sticky.lastIndex = pos;
  return sticky.exec(text)?.[0] ?? '';
}

// Go's text/scanner, which BuildKit reads words and patterns with, skips a leading byte-order mark.
function stripBOM(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

// Expanded text with a value added, within MAX_EXPANSION_LENGTH.
function grown(text: string, value: string): string {
  if (text.length + value.length > MAX_EXPANSION_LENGTH) {
    throw new ExpansionLimitError(`expands to more than ${MAX_EXPANSION_LENGTH} characters (hoist's limit)`);
  }
  return text + value;
}

// A pattern step: a code point to match, ANY_CHAR (`?`) or ANY_RUN (`*`); neither matches a newline.
const ANY_CHAR = -1;
const ANY_RUN = -2;

// BuildKit's patterns: `*` and `?` wildcards, and `\` escaping `*`, `?` or `\`.
// There are no bracket expressions: `[` and `]` match themselves.
function compilePattern(pattern: string): number[] {
  const chars = Array.from(stripBOM(pattern));
  const steps: number[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '*') steps.push(ANY_RUN);
    else if (ch === '?') steps.push(ANY_CHAR);
    else if (ch === '\\') {
      const next = chars[i + 1] ?? '';
      // `\}` and `\/` only stopped the character from closing the ${...}.
      if (next === '}' || next === '/') continue;
      if (next !== '*' && next !== '?' && next !== '\\') {
        throw new ShellExpansionError(`invalid pattern (${pattern}) in substitution: invalid escape '\\${next}'`);
      }
      steps.push(next.codePointAt(0)!);
      i++;
    } else steps.push(ch.codePointAt(0)!);
  }
  return steps;
}

interface Match {
  start: number;
  end: number;
}

/**
 * Finds matches of a pattern as Go's regexp does for these patterns, greedy or lazy: the leftmost,
 * and the longest or shortest there. The pattern runs as the set of its positions that the text
 * read so far reaches, without backtracking (a RegExp takes exponential time on patterns like
 * `*a*a*a*b`): the time is at most the product of the lengths, as with Go's.
 */
class PatternMatcher {
  private readonly steps: number[];
  // For each position in the pattern: where the match that reached it started, or -1; and the
  // positions reached. The next ones are filled while reading a character.
  private starts: Int32Array;
  private nextStarts: Int32Array;
  private active: number[] = [];
  private nextActive: number[] = [];

  constructor(steps: number[]) {
    this.steps = steps;
    this.starts = new Int32Array(steps.length + 1).fill(-1);
    this.nextStarts = new Int32Array(steps.length + 1).fill(-1);
  }

  /** The match from `from` on (only at `from` when anchored); `backward` reads towards the start. */
  find(text: string, from: number, mode: { anchored: boolean; longest: boolean; backward?: boolean }): Match | undefined {
    const accept = this.steps.length;
    const end = mode.backward ? 0 : text.length;
    for (const state of this.active) this.starts[state] = -1;
    this.active.length = 0;
    let found: Match | undefined;
    for (let at = from; ;) {
      if (!found && (at === from || !mode.anchored)) this.reach(this.starts, this.active, 0, at);
      if (this.starts[accept] !== -1) {
        found = { start: this.starts[accept]!, end: at };
        if (!mode.longest) return found;
      }
      if (at === end || (this.active.length === 0 && (found || mode.anchored))) return found;
      const ch = mode.backward ? codePointBefore(text, at) : text.codePointAt(at)!;
      for (const state of this.active) {
        const start = this.starts[state]!;
        this.starts[state] = -1;
        const step = this.steps[state];
        // Once there is a match, only a match that started as early can replace it.
        if (step === undefined || (found && start > found.start)) continue;
        if (step === ANY_RUN) {
          if (ch !== NEWLINE) this.reach(this.nextStarts, this.nextActive, state, start);
        } else if (step === ANY_CHAR ? ch !== NEWLINE : step === ch) this.reach(this.nextStarts, this.nextActive, state + 1, start);
      }
      const starts = this.starts;
      this.starts = this.nextStarts;
      this.nextStarts = starts;
      const active = this.active;
      this.active = this.nextActive;
      this.nextActive = active;
      active.length = 0;
      const width = ch > 0xffff ? 2 : 1;
      at += mode.backward ? -width : width;
    }
  }

  // The earliest start wins a position. A `*` may match nothing: reaching it reaches the next one too.
  private reach(set: Int32Array, list: number[], state: number, start: number): void {
    for (;; state++) {
      const old = set[state]!;
      if (old !== -1 && old <= start) return;
      if (old === -1) list.push(state);
      set[state] = start;
      if (this.steps[state] !== ANY_RUN) return;
    }
  }
}

// The code point that ends at `at`.
function codePointBefore(text: string, at: number): number {
  const last = text.charCodeAt(at - 1);
  const first = at >= 2 ? text.charCodeAt(at - 2) : 0;
  return last >= 0xdc00 && last <= 0xdfff && first >= 0xd800 && first <= 0xdbff ? text.codePointAt(at - 2)! : last;
}

// Removes the shortest or longest prefix that matches, or suffix: the value read backwards
// against the pattern reversed.
function trimMatch(value: string, steps: number[], longest: boolean, suffix: boolean): string {
  if (!suffix) {
    const match = new PatternMatcher(steps).find(value, 0, { anchored: true, longest });
    return match ? value.slice(match.end) : value;
  }
  const match = new PatternMatcher([...steps].reverse()).find(value, value.length, { anchored: true, longest, backward: true });
  return match ? value.slice(0, match.end) : value;
}

// As Go's Regexp.ReplaceAllString: an empty match right after a match is not
// replaced (so `${V//*/x}` gives "x", where String.replaceAll gives "xx").
function replaceAll(value: string, steps: number[], replacement: string): string {
  const matcher = new PatternMatcher(steps);
  let out = '';
  let last = 0;
  for (let from = 0; from <= value.length; ) {
    const match = matcher.find(value, from, { anchored: false, longest: true });
    if (!match) break;
    out = grown(out, value.slice(last, match.start));
    if (match.end > last || match.start === 0) out = grown(out, expandTemplate(replacement, value.slice(match.start, match.end)));
    last = match.end;
    from = match.end > from ? match.end : from + ((value.codePointAt(from) ?? 0) > 0xffff ? 2 : 1);
  }
  return grown(out, value.slice(last));
}

// Go's ReplaceAllString also reads `$` in the replacement as a group reference.
// The pattern has no groups: `$0` and `${0}` give the match, `$$` gives `$`,
// any other reference is empty and a malformed one stays as written.
const GROUP_REF = /\$(?:(\$)|\{([\p{L}\p{Nd}_]+)\}|([\p{L}\p{Nd}_]+))/gu;

function expandTemplate(template: string, match: string): string {
  return template.replace(GROUP_REF, (_ref, dollar?: string, braced?: string, bare?: string) =>
    dollar ? '$' : (braced ?? bare) === '0' ? match : '',
  );
}

function lex(word: string, options: LexOptions, lookup: Lookup, words?: Words, namesOnly = false): string {
  try {
    return new Lexer(word, options, lookup, namesOnly).until(EOF, false, words);
  } catch (e) {
    if (e instanceof ShellExpansionError) throw new ShellExpansionError(`failed to process ${JSON.stringify(word)}: ${e.message}`);
    throw e;
  }
}

// Expand variables, apply escapes, remove quotes; one string, never split.
export function expandWord(word: string, env: Env, options: LexOptions = {}): string {
  return lex(word, options, (name) => env.get(name));
}

// Same, but unquoted expansions are split into words on whitespace; quoted parts stay in one word.
export function expandWords(word: string, env: Env, options: LexOptions = {}): string[] {
  const words = new Words();
  lex(word, options, (name) => env.get(name), words);
  return words.finish();
}

// Names of variables referenced by the word (for cache keys and for "used before declared" checks).
// Positional and special parameters ($1, $@...) are included, as in BuildKit's match lists.
// Throws ShellExpansionError only for a malformed word, one that fails whatever the values.
export function referencedVariables(word: string, options: LexOptions = {}): Set<string> {
  const names = new Set<string>();
  // Every ${...} part is read whatever the values, so any value finds every name;
  // a non-empty one keeps ${V:?} from failing.
  const record = (name: string) => {
    names.add(name);
    return 'x';
  };
  lex(word, options, record, undefined, true);
  return names;
}
