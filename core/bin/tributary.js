#!/usr/bin/env node
// The `tributary` command. Runs the built CLI (`npm run build` in a source checkout).
let main;
try {
  ({ main } = await import('../dist/cli/main.js'));
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  process.stderr.write('tributary: the CLI is not built (core/dist is missing); run `npm run build` first\n');
  process.exit(2);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`tributary: unexpected failure: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
