// Build step: copies the Airbyte protocol schema (shared/specs, MIT, Airbyte Inc.) next to
// the compiled suite, so the published package validates without this repository around it.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const source = resolve(packageDir, '..', '..', 'shared', 'specs', 'airbyte_protocol_v0.yaml');
const target = join(packageDir, 'dist', 'airbyte_protocol_v0.yaml');
if (!existsSync(source)) {
  process.stderr.write(`conformance: ${source} not found; the built package will look for shared/specs at run time\n`);
  process.exit(0);
}
mkdirSync(dirname(target), { recursive: true });
copyFileSync(source, target);
