/**
 * Step reports of the destination's child-process test scripts (limited-writer.ts,
 * retry-writer.ts, probe5-large-batch-writer.ts): one JSON line `{step, outcome}` per step
 * on stdout, which the parent test reads.
 */

/** Prints the outcome of one step. */
export const report = (step: string, outcome: unknown): void => void process.stdout.write(JSON.stringify({ step, outcome }) + '\n');

/** Runs one step and reports `ok`, or the error's code (else its text): a failing step does not stop the script. */
export const attempt = async (step: string, run: () => Promise<unknown>): Promise<void> => {
  try {
    await run();
    report(step, 'ok');
  } catch (error) {
    report(step, (error as NodeJS.ErrnoException).code ?? String(error));
  }
};
