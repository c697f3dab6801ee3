// BuildKit's build checks as `hoist build` runs them: chosen by the Dockerfile's check directive,
// and shown as buildx shows them.
import { checkDockerfile, parseCheckDirective, parseInstructions, type CheckWarning } from '../parser/index.ts';
import { normalizeReference, readImage, type Store } from '../layers/index.ts';
import { sourceExcerpt } from './errors.ts';

/**
 * The build checks of a Dockerfile as the `check` directive (or the BUILDKIT_DOCKERFILE_CHECK
 * build arg) chooses them, a base image's ENV read from the store where it is there; and how a
 * warning is shown, as buildx shows it: the rule and its page, the message, the lines.
 */
export async function runChecks(store: Store, text: string, name: string, buildArgs: ReadonlyMap<string, string>) {
  const dockerfile = parseInstructions(text, name);
  const directive = parseCheckDirective(buildArgs.get('BUILDKIT_DOCKERFILE_CHECK') ?? dockerfile.directives.check);
  const env = new Map<string, string[]>();
  for (const { from } of dockerfile.stages) {
    if (/\$|:\/\//.test(from.image) || dockerfile.stagesByName.has(from.image.toLowerCase()) || env.has(from.image)) continue;
    // A name that is no image reference is left to the build to refuse.
    const image = await Promise.resolve().then(async () => readImage(store, (await store.resolve(normalizeReference(from.image)))!)).catch(() => undefined);
    if (image) env.set(from.image, (image.config.config.Env ?? []).map((entry) => entry.split('=')[0]!));
  }
  const found = directive.skip.has('all') ? [] : checkDockerfile(dockerfile, { baseEnv: (image) => env.get(image), buildArgs: new Set(buildArgs.keys()) });
  return {
    warnings: found.filter((warning) => !directive.skip.has(warning.rule)),
    error: directive.error,
    format: (warning: CheckWarning): string => `WARNING: ${warning.rule} - ${warning.url}\n${warning.message}\n${name}:${warning.line}\n${sourceExcerpt(dockerfile.lines, warning.line, warning.endLine)}`,
  };
}
