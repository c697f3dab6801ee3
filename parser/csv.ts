// One CSV record as Go's encoding/csv reads it (BuildKit's go-csvvalue for RUN --mount; buildx for
// --output, --secret and --cache-*): one splitter for the Dockerfile and the command line.

/** Splits a record on commas. A field in double quotes may hold commas, and `""` is a quote in it; a stray quote is an error. */
export function splitCsv(text: string): string[] {
  const fields: string[] = [];
  let field = '';
  for (let i = 0; i <= text.length; i++) {
    if (i === text.length || text[i] === ',') {
      fields.push(field);
      field = '';
    } else if (text[i] === '"' && field === '') {
      // A quoted field runs to the next lone quote, which ends the field.
      for (i++; i < text.length && !(text[i] === '"' && text[i + 1] !== '"'); i++) field += text[i] === '"' ? text[++i] : text[i];
      if (i >= text.length) throw new Error('a quote is not closed');
      if (i + 1 < text.length && text[i + 1] !== ',') throw new Error('text after a closing quote');
    } else if (text[i] === '"') {
      throw new Error('a quote inside a field that does not start with one');
    } else field += text[i];
  }
  return fields;
}
