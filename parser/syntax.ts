// The parse stage, as BuildKit's frontend/dockerfile/parser does it: parser directives, logical
// lines (continuations, comments inside them), heredoc bodies, and the split of each instruction
// into keyword, flags and arguments. No variable expansion and no quote removal happen here.
import { sourceError, type Position, type SourceRange } from './errors.ts';
import { SPACE } from './shell.ts';

export interface Heredoc {
  /** The delimiter word, quotes removed. */
  name: string;
  /** The body, each line with its newline; tabs already trimmed for `<<-`. */
  content: string;
  /** False when the delimiter was quoted: the body is then taken literally. */
  expand: boolean;
  /** `<<-`: leading tabs are trimmed from the body and the terminator. */
  chomp: boolean;
  /** The file descriptor a `3<<EOF` form names; 0 when none was written. */
  fd: number;
}

export interface Flag {
  /** The flag word without quotes, e.g. `--chown=a b`. */
  text: string;
  position: Position;
}

export interface Node {
  /** Lower-cased instruction keyword. */
  keyword: string;
  /** The keyword as written, for messages. */
  keywordText: string;
  flags: Flag[];
  /** The arguments exactly as BuildKit's parse tree holds them (ENV and LABEL: name, value, separator triples). */
  args: string[];
  /** True when the arguments came from a JSON array. */
  json: boolean;
  /** The trigger of an ONBUILD. */
  trigger?: Node;
  heredocs: Heredoc[];
  /** The logical line: continuations joined, the escape character and comments removed. */
  original: string;
  range: SourceRange;
  /** Where the arguments (after the flags) begin. */
  argsPosition: Position;
}

export interface Directives {
  escape: string;
  syntax?: string;
  check?: string;
}

export interface ParsedDockerfile {
  file: string;
  directives: Directives;
  nodes: Node[];
  /** The source split into lines (no newlines), for error messages. */
  lines: string[];
}

/** BuildKit's limit: its line scanner stops at lines of more than 65535 bytes. */
export const MAX_LINE_BYTES = 65535;
const KNOWN_DIRECTIVES = new Set(['escape', 'syntax', 'check']);
// `# key = value`; the value is trimmed after the match (a `\s*$` in the pattern backtracks
// quadratically on a long run of blanks).
const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=([^]*)$/;
const HEREDOC_WORD = /^(\d*)<<(-?)([^<]*)$/;
const HEREDOC_INSTRUCTIONS = new Set(['run', 'copy', 'add']);
const LEADING_SPACE = new RegExp(`^${SPACE.source}+`);
/** BuildKit's reWhitespace: blanks that separate words, never newlines. */
const BLANKS = /[\t\v\f\r ]+/;

const isSpace = (ch: string): boolean => SPACE.test(ch);
const isComment = (line: string): boolean => line.replace(LEADING_SPACE, '').startsWith('#');

/** `text` without trailing characters that `isTrailing` accepts (a loop: a `\s+$` RegExp is quadratic). */
function trimEnd(text: string, isTrailing: (ch: string) => boolean): string {
  let end = text.length;
  while (end > 0 && isTrailing(text[end - 1]!)) end--;
  return text.slice(0, end);
}

const trimSpace = (s: string): string => trimEnd(s, isSpace).replace(LEADING_SPACE, '');

/** Maps offsets in a logical line back to source positions. */
class LineMap {
  private readonly segments: { offset: number; line: number; column: number }[] = [];
  text = '';

  append(text: string, line: number, column: number): void {
    this.segments.push({ offset: this.text.length, line, column });
    this.text += text;
  }

  positionOf(offset: number): Position {
    // The last segment starting at or before the offset, found by bisection: an instruction may
    // have thousands of continuation lines and of flags.
    let low = 0;
    let high = this.segments.length - 1;
    while (low < high) {
      const middle = Math.ceil((low + high) / 2);
      if (this.segments[middle]!.offset <= offset) low = middle;
      else high = middle - 1;
    }
    const found = this.segments[low] ?? { offset: 0, line: 1, column: 1 };
    return { line: found.line, column: found.column + (offset - found.offset) };
  }
}

/** Splits source text into lines, each keeping its newline (heredoc bodies need it). */
function splitLines(text: string): string[] {
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  if (lines.length > 0) lines[0] = lines[0]!.replace(/^\uFEFF/, '');
  return lines;
}

const trimNewline = (line: string): string => line.replace(/\r?\n$/, '');

export function parseDockerfile(text: string, file = 'Dockerfile'): ParsedDockerfile {
  const raw = splitLines(text);
  const lines = raw.map(trimNewline);
  const fail = (message: string, position: Position): never => sourceError({ file, lines }, position, message);
  const long = lines.findIndex((line) => Buffer.byteLength(line) > MAX_LINE_BYTES);
  if (long >= 0) fail(`the line is longer than ${MAX_LINE_BYTES} bytes, the most BuildKit reads`, { line: long + 1, column: 1 });

  const directives = readDirectives(lines, fail);
  const escape = directives.values.escape;
  const nodes: Node[] = [];
  let index = directives.lineCount;

  while (index < lines.length) {
    const startIndex = index;
    const first = lines[index]!;
    index++;
    const indent = first.length - first.replace(LEADING_SPACE, '').length;
    const firstText = isComment(first) ? '' : first.slice(indent);
    const map = new LineMap();
    let { text, continues } = trimContinuation(firstText, escape);
    if (!continues && text === '') continue;
    map.append(text, startIndex + 1, indent + 1);

    while (continues && index < lines.length) {
      const line = lines[index]!;
      index++;
      if (isComment(line) || line.replace(LEADING_SPACE, '') === '') continue;
      ({ text, continues } = trimContinuation(line, escape));
      map.append(text, index, 1);
    }
    const endLine = index;

    const node = nodeFromLine(map.text, 0, map, escape, fail);
    node.range = {
      start: { line: startIndex + 1, column: indent + 1 },
      end: { line: endLine, column: lines[endLine - 1]!.length + 1 },
    };

    const heredocTarget = node.keyword === 'onbuild' && node.trigger ? node.trigger : node;
    if (HEREDOC_INSTRUCTIONS.has(heredocTarget.keyword) && !heredocTarget.json && map.text.includes('<<')) {
      for (const heredoc of heredocsFromLine(map.text, escape)) {
        let terminated = false;
        while (index < lines.length) {
          const line = raw[index]!;
          index++;
          let candidate = trimNewline(line);
          if (heredoc.chomp) candidate = candidate.replace(/^\t+/, '');
          if (candidate === heredoc.name) {
            terminated = true;
            break;
          }
          heredoc.content += heredoc.chomp ? line.replace(/^\t+/, '') : line;
        }
        if (!terminated) {
          fail(`unterminated heredoc: no line "${heredoc.name}" before the end of the file`, node.range.start);
        }
        heredocTarget.heredocs.push(heredoc);
      }
      node.range.end = { line: index, column: lines[index - 1]!.length + 1 };
    }
    nodes.push(node);
  }

  if (nodes.length === 0) {
    fail('the Dockerfile has no instructions', { line: Math.max(1, lines.length), column: 1 });
  }
  return { file, directives: directives.values, nodes, lines };
}

type Fail = (message: string, position: Position) => never;

/** Reads the parser directives at the top of the file; the first other line ends them. */
function readDirectives(lines: string[], fail: Fail): { values: Directives; lineCount: number } {
  const values: Directives = { escape: '\\' };
  const seen = new Set<string>();
  let count = 0;
  for (const line of lines) {
    const match = DIRECTIVE.exec(line.replace(LEADING_SPACE, ''));
    const key = match?.[1]?.toLowerCase();
    // The value is what `\s*(.+?)\s*$` would take: not empty, and no line break but at its ends.
    const value = match?.[2]?.trim();
    if (!key || !value || /[\r\u2028\u2029]/.test(value) || !KNOWN_DIRECTIVES.has(key)) break;
    const position = { line: count + 1, column: 1 };
    if (seen.has(key)) fail(`only one ${key} parser directive can be used`, position);
    seen.add(key);
    if (key === 'escape') {
      if (value !== '\\' && value !== '`') fail(`invalid escape token '${value}' does not match \` or \\`, position);
      values.escape = value;
    } else {
      values[key as 'syntax' | 'check'] = value;
    }
    count++;
  }
  return { values, lineCount: count };
}

/**
 * A line continues when it ends with the escape character (then optional blanks) and the character
 * before it is not the escape character too; the escape character and the blanks are removed.
 */
function trimContinuation(line: string, escape: string): { text: string; continues: boolean } {
  const stripped = trimEnd(line, (ch) => ch === ' ' || ch === '\t');
  if (stripped.endsWith(escape) && !stripped.endsWith(escape + escape)) {
    return { text: stripped.slice(0, -1), continues: true };
  }
  return { text: line, continues: false };
}

/** Builds a node from a logical line; `base` is where `line` starts inside the mapped text. */
function nodeFromLine(line: string, base: number, map: LineMap, escape: string, fail: Fail, inTrigger = false): Node {
  const leading = line.length - line.replace(LEADING_SPACE, '').length;
  const trimmed = trimSpace(line);
  const keywordText = /^[^\t\v\f\r ]*/.exec(trimmed)![0];
  const keyword = keywordText.toLowerCase();
  const afterKeyword = trimmed.slice(keywordText.length).replace(BLANKS_AT_START, '');
  const restStart = base + leading + trimmed.length - afterKeyword.length;
  const { rest, restIndex, flags } = extractFlags(afterKeyword, escape);
  const flagList = flags.map((flag) => ({ text: flag.text, position: map.positionOf(restStart + flag.offset) }));
  const argsPosition = map.positionOf(restStart + restIndex);
  const args = trimSpace(rest);
  const atArgs = (message: string): never => fail(message, argsPosition);

  const node: Node = {
    keyword,
    keywordText,
    flags: flagList,
    args: [],
    json: false,
    heredocs: [],
    original: line,
    range: { start: map.positionOf(base + leading), end: map.positionOf(base + line.length) },
    argsPosition,
  };

  switch (keyword) {
    case 'run':
    case 'cmd':
    case 'entrypoint':
    case 'shell':
      Object.assign(node, maybeJson(args, false, atArgs));
      break;
    case 'add':
    case 'copy':
    case 'volume':
      Object.assign(node, maybeJson(args, true, atArgs));
      break;
    case 'from':
    case 'expose':
      node.args = splitBlanks(args);
      break;
    case 'user':
    case 'workdir':
    case 'stopsignal':
    case 'maintainer':
      node.args = args === '' ? [] : [args];
      break;
    case 'env':
    case 'label':
      node.args = nameValuePairs(args, keyword.toUpperCase(), escape, atArgs);
      break;
    case 'arg':
      node.args = quoteAwareWords(args, escape);
      break;
    case 'healthcheck': {
      const type = /^[^\s]*/.exec(args)![0];
      if (type !== '') {
        const command = maybeJson(args.slice(type.length).replace(LEADING_SPACE, ''), false, atArgs);
        node.args = [type, ...command.args];
        node.json = command.json;
      }
      break;
    }
    case 'onbuild':
      // A trigger's own trigger is not read: `ONBUILD ONBUILD` is an error (instructions.ts), and
      // reading it would recurse once for each ONBUILD on the line.
      if (args !== '' && !inTrigger) node.trigger = nodeFromLine(args, restStart + restIndex, map, escape, fail, true);
      break;
    default:
      node.args = [''];
  }
  return node;
}

const BLANKS_AT_START = new RegExp(`^${BLANKS.source}`);

function splitBlanks(args: string): string[] {
  return args === '' ? [] : args.split(BLANKS);
}

/** A JSON array of strings gives one argument per element; anything else is taken as text. */
function maybeJson(args: string, splitText: boolean, fail: (message: string) => never): { args: string[]; json: boolean } {
  if (args.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(args);
    } catch {
      parsed = undefined;
    }
    if (Array.isArray(parsed)) {
      if (!parsed.every((item) => typeof item === 'string')) fail('a JSON array form must hold only strings');
      return { args: parsed as string[], json: true };
    }
  }
  if (splitText) return { args: splitBlanks(args), json: false };
  return { args: args === '' ? [] : [args], json: false };
}

/** ENV and LABEL: `name value` (legacy) or `name=value ...`, as name, value, separator triples. */
function nameValuePairs(args: string, keyword: string, escape: string, fail: (message: string) => never): string[] {
  const words = quoteAwareWords(args, escape);
  if (words.length === 0) return [];
  if (!words[0]!.includes('=')) {
    const [name, value] = splitOnce(args, BLANKS);
    if (value === undefined) fail(`${keyword} must have two arguments`);
    return [name, value!, ''];
  }
  return words.flatMap((word) => {
    const equals = word.indexOf('=');
    if (equals < 0) fail(`syntax error: can't find = in "${word}"; it must be of the form name=value`);
    return [word.slice(0, equals), word.slice(equals + 1), '='];
  });
}

function splitOnce(text: string, separator: RegExp): [string, string | undefined] {
  const match = separator.exec(text);
  if (!match) return [text, undefined];
  return [text.slice(0, match.index), text.slice(match.index + match[0].length)];
}

/** Splits on unquoted whitespace, keeping quotes and escapes in the words (BuildKit's parseWords). */
function quoteAwareWords(text: string, escape: string): string[] {
  const words: string[] = [];
  const chars = Array.from(text);
  let word = '';
  let inWord = false;
  let quote = '';
  let blankOk = false;
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (quote) {
      if (ch === quote) quote = '';
      else if (ch === escape && quote !== "'") {
        if (i + 1 === chars.length) continue;
        word += ch;
        i++;
        word += chars[i]!;
        continue;
      }
      word += ch;
      continue;
    }
    if (isSpace(ch)) {
      if (inWord && (blankOk || word.length > 0)) words.push(word);
      inWord = false;
      word = '';
      blankOk = false;
      continue;
    }
    inWord = true;
    if (ch === "'" || ch === '"') {
      quote = ch;
      blankOk = true;
    } else if (ch === escape) {
      if (i + 1 === chars.length) continue;
      word += ch;
      i++;
      word += chars[i]!;
      continue;
    }
    word += ch;
  }
  if (inWord && (blankOk || word.length > 0)) words.push(word);
  return words;
}

interface RawFlag {
  text: string;
  offset: number;
}

/**
 * Pulls leading `--name[=value]` words off an instruction's arguments. Quotes in a flag are removed
 * and the escape character applies; a bare `--` ends the flags and is dropped.
 */
function extractFlags(text: string, escape: string): { rest: string; restIndex: number; flags: RawFlag[] } {
  const flags: RawFlag[] = [];
  let pos = 0;
  for (;;) {
    while (pos < text.length && isSpace(text[pos]!)) pos++;
    if (pos >= text.length) return { rest: '', restIndex: pos, flags };
    if (!text.startsWith('--', pos)) return { rest: text.slice(pos), restIndex: pos, flags };
    const start = pos;
    let word = '';
    let quote = '';
    let quoted = false;
    for (; pos < text.length; pos++) {
      const ch = text[pos]!;
      if (!quote && isSpace(ch)) break;
      if (!quote && (ch === "'" || ch === '"')) {
        quote = ch;
        quoted = true;
        continue;
      }
      if (quote && ch === quote) {
        quote = '';
        continue;
      }
      if (ch === escape) {
        if (pos + 1 === text.length) continue;
        pos++;
        word += text[pos]!;
        continue;
      }
      word += ch;
    }
    if (word === '--') {
      while (pos < text.length && isSpace(text[pos]!)) pos++;
      return { rest: text.slice(pos), restIndex: pos, flags };
    }
    if (quoted || word.length > 0) flags.push({ text: word, offset: start });
  }
}

/**
 * Finds the heredocs a line opens (`<<EOF`, `<<-EOF`, `3<<"EOF"`), in order. A quoted delimiter,
 * even partly quoted, turns off expansion of the body.
 */
function heredocsFromLine(line: string, escape: string): Heredoc[] {
  const heredocs: Heredoc[] = [];
  for (const word of shellWordsRaw(line, escape)) {
    const match = HEREDOC_WORD.exec(word);
    if (!match || match[3] === '') continue;
    const delimiter = match[3]!;
    const name = removeQuotes(delimiter, escape);
    heredocs.push({
      name,
      content: '',
      expand: !/['"]/.test(delimiter),
      chomp: match[2] === '-',
      fd: match[1] === '' ? 0 : Number(match[1]),
    });
  }
  return heredocs;
}

/** Shell words with their quotes and escapes kept. */
function shellWordsRaw(line: string, escape: string): string[] {
  const words: string[] = [];
  let word = '';
  let quote = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (!quote && isSpace(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    word += ch;
    if (quote) {
      if (ch === quote) quote = '';
      else if (ch === escape && quote === '"' && i + 1 < line.length) word += line[++i]!;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
    } else if (ch === escape && i + 1 < line.length) {
      word += line[++i]!;
    }
  }
  if (inWord) words.push(word);
  return words;
}

function removeQuotes(word: string, escape: string): string {
  let out = '';
  let quote = '';
  for (let i = 0; i < word.length; i++) {
    const ch = word[i]!;
    if (quote) {
      if (ch === quote) quote = '';
      else if (ch === escape && quote === '"' && i + 1 < word.length) out += word[++i]!;
      else out += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
    } else if (ch === escape && i + 1 < word.length) {
      out += word[++i]!;
    } else {
      out += ch;
    }
  }
  return out;
}
