// The package ships no types: it parses an SPDX licence expression and throws on anything else.
declare module 'spdx-expression-parse' {
  export default function parse(expression: string): unknown;
}
