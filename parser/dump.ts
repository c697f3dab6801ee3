// BuildKit's parse-tree dump (Node.Dump), used to compare hoist's parse stage with BuildKit's own
// test data byte for byte.
import { goQuote } from './quote.ts';
import type { Node } from './syntax.ts';

export function dumpNode(node: Node): string {
  let out = node.keyword;
  if (node.flags.length > 0) out += ` [${node.flags.map((flag) => goQuote(flag.text)).join(' ')}]`;
  if (node.trigger) out += ` (${dumpNode(node.trigger)})`;
  for (const arg of node.args) out += ` ${goQuote(arg)}`;
  return out;
}

/** One line per instruction, as BuildKit's tests print it. */
export function dumpTree(nodes: Node[]): string {
  return nodes.map((node) => `(${dumpNode(node)})\n`).join('');
}
