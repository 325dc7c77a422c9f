#!/usr/bin/env node
// `npm run bench -- <name> [options]`: runs one benchmark and prints JSON lines; the last
// line is the summary with the figures, the ratio to the in-run reference, and the targets.
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const [name, ...args] = process.argv.slice(2);
const available = (await readdir(here)).filter((f) => f.endsWith('.bench.mjs')).map((f) => f.replace('.bench.mjs', ''));
if (!name || !available.includes(name)) {
  process.stderr.write(`usage: npm run bench -- <name>\navailable: ${available.join(', ')}\n`);
  process.exit(2);
}
const bench = await import(join(here, `${name}.bench.mjs`));
await bench.run(args);
