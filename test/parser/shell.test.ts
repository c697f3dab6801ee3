// hoist's own cases for the shell lexer; BuildKit's envVarTest and wordsTest are in conformance.test.ts.
import { describe, expect, test } from 'vitest';
import { expandWord, expandWords, referencedVariables, ShellExpansionError, type Env } from '../../parser/shell.ts';

function expectError(run: () => unknown): void {
  expect(run).toThrow(ShellExpansionError);
}

describe('hoist cases', () => {
  const env: Env = new Map([
    ['FOO', 'xxyy'],
    ['PATHS', '/tmp/tmp/bar.txt'],
    ['FILE', 'archive.tar.gz'],
    ['EMPTY', ''],
    ['SPACED', 'a  b'],
    ['ODD', '()[]{}^$.*?|\\x'],
    ['DOLLARS', '[$$]'],
    ['MATCH', '<$0>'],
  ]);
  const cases: [string, string][] = [
    // # and ## remove the shortest / longest matching prefix
    ['${FILE#*.}', 'tar.gz'],
    ['${FILE##*.}', 'gz'],
    ['${FOO#x}', 'xyy'],
    ['${FOO#*}', 'xxyy'],
    ['${FOO##*}', ''],
    ['${FOO#}', 'xxyy'],
    ['${FOO#?x}', 'yy'],
    ['${FOO#*x*y}', 'y'],
    ['${FOO#nomatch}', 'xxyy'],
    ['${UNSET#x}', ''],
    // % and %% remove the shortest / longest matching suffix
    ['${FILE%.*}', 'archive.tar'],
    ['${FILE%%.*}', 'archive'],
    ['${FOO%y}', 'xxy'],
    ['${FOO%%x*}', ''],
    ['${FOO%%\\**}', 'xxyy'],
    ['${FOO%}', 'xxyy'],
    // escapes and regexp characters in patterns are literal
    ['${ODD#()[]{\\}^$.\\*\\?|\\\\}', 'x'],
    ['${FOO#[x]}', 'xxyy'],
    // / replaces the first match, // every match; patterns are greedy
    ['${PATHS/\\/tmp/}', '/tmp/bar.txt'],
    ['${PATHS//\\/tmp/}', '/bar.txt'],
    ['${PATHS/t*p/X}', '/X/bar.txt'],
    ['${FOO/y/Y}', 'xxYy'],
    ['${FOO//y/Y}', 'xxYY'],
    ['${FOO//?/-}', '----'],
    ['${PATHS//\\//\\/}', '\\/tmp\\/tmp\\/bar.txt'],
    ['${FOO/$EMPTY/ww}', 'wwxxyy'],
    ['${FOO//*/z}', 'z'],
    // as in Go's ReplaceAllString, `$0` and `$$` in a replacement for // are templates
    ['${FOO//x/$DOLLARS}', '[$][$]yy'],
    ['${FOO//x/$MATCH}', '<x><x>yy'],
    ['${FOO/x/$MATCH}', '<$0>xyy'],
    ['${FOO///}', 'xxyy'],
    ['${UNSET//x/y}', ''],
    // nesting and the other modifiers
    ['${UNSET:-${FOO#x}}', 'xyy'],
    ['${FOO:+${FILE%%.*}}', 'archive'],
    ['${EMPTY-set}', ''],
    ['${EMPTY:-unset}', 'unset'],
    ['${EMPTY+set}', 'set'],
    ['${EMPTY:+set}', ''],
    ['${FOO?}', 'xxyy'],
    ['${EMPTY?}', ''],
  ];
  test.each(cases)('%s', (input, expected) => {
    expect(expandWord(input, env)).toBe(expected);
  });

  test.each([
    '${FOO:#x}',
    '${FOO:%x}',
    '${FOO:##x}',
    '${FOO=x}',
    '${FOO#\\x}',
    '${FOO//ww}',
    '${FOO//}',
    '${FOO/x',
    '${FOO#x',
  ])('error: %s', (input) => {
    expectError(() => expandWord(input, env));
  });

  test('${V:?msg} and ${V?msg} errors name the variable', () => {
    expect(() => expandWord('${UNSET:?set it}', env)).toThrow('UNSET: set it');
    expect(() => expandWord('${UNSET?}', env)).toThrow('UNSET: is not allowed to be unset');
    expect(() => expandWord('${EMPTY:?}', env)).toThrow('EMPTY: is not allowed to be empty');
    expect(() => expandWord('${UNSET:?need $FOO}', env)).toThrow('UNSET: need xxyy');
  });

  test('word splitting', () => {
    expect(expandWords('a $SPACED "$SPACED" \'$SPACED\'', env)).toEqual(['a', 'a', 'b', 'a  b', '$SPACED']);
    expect(expandWords('x${UNSET:-p q}y', env)).toEqual(['xp', 'qy']); // BuildKit >= 1.9 drops the x (a bug)
    expect(expandWords('"" a', env)).toEqual(['a']);
    expect(expandWords('cat <<  EOF', env)).toEqual(['cat', '<<  EOF']);
  });

  test('processQuotes: false keeps quotes but expands and unescapes', () => {
    const raw = { processQuotes: false };
    expect(expandWord(`echo "$FOO" '$FOO' \\$FOO`, env, raw)).toBe(`echo "xxyy" 'xxyy' $FOO`);
    expect(expandWord(`it's "${'${UNSET:-a b}'}"`, env, raw)).toBe(`it's "a b"`);
    expect(expandWord(`"unterminated`, env, raw)).toBe(`"unterminated`);
    expect(expandWords(`"$SPACED"`, env, raw)).toEqual(['"a', 'b"']);
  });

  test('backtick escape', () => {
    const tick = { escape: '`' };
    expect(expandWord('C:\\dir`$FOO', env, tick)).toBe('C:\\dir$FOO');
    expect(expandWord('"a`"b"', env, tick)).toBe('a"b');
    expect(expandWord('"a``b`x"', env, tick)).toBe('a`b`x');
    expect(expandWord('"a\\$FOO"', env, tick)).toBe('a\\xxyy');
    expect(expandWord('a`', env, tick)).toBe('a');
    expect(expandWords('a` b c', env, tick)).toEqual(['a b', 'c']);
    expect(expandWord('${FOO#`x}', env, tick)).toBe('xxyy'); // the pattern keeps its escape: "`x"
  });

  test('referencedVariables', () => {
    expect(referencedVariables('plain')).toEqual(new Set());
    expect(referencedVariables('$A ${B} "${C:-$D}" \'$E\' \\$F')).toEqual(new Set(['A', 'B', 'C', 'D']));
    expect(referencedVariables('${A:+${B:?}}${C#$D}${E//$F/$G}')).toEqual(new Set(['A', 'B', 'C', 'D', 'E', 'F', 'G']));
    expect(referencedVariables('${A:?}${B?}')).toEqual(new Set(['A', 'B']));
    // with the ` escape, `\` is literal: this pattern is valid only if B starts with `*`, `?` or `\`
    const tick = { escape: '`' };
    expect(expandWord('${A#\\${B}}', new Map([['A', '*a'], ['B', '*']]), tick)).toBe('a');
    expect(referencedVariables('${A#\\${B}}', tick)).toEqual(new Set(['A', 'B']));
    expect(referencedVariables('$1 $@ $.')).toEqual(new Set(['1', '@']));
    expect(referencedVariables('`$A $B', { escape: '`' })).toEqual(new Set(['B']));
    expect(() => referencedVariables('${A')).toThrow(ShellExpansionError);
  });

  test('errors say which word failed', () => {
    expect(() => expandWord('a${}', env)).toThrow('failed to process "a${}": syntax error: bad substitution');
  });
});
