// Entry point of the `hoist` command.
import { main } from './cli.ts';

process.exitCode = await main(process.argv.slice(2));
