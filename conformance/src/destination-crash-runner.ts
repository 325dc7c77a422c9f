/**
 * Child process of the destination crash cases (`node --conditions=tributary-source --import tsx`).
 * Reads a CrashRunnerInput as JSON on stdin, opens the destination, writes and commits
 * batch A, writes batch B without committing, then kills itself with SIGKILL: no `finally`,
 * no exit handler, no flush runs — what a process crash or an OOM kill leaves behind.
 * With `ioSteps`, it also commits B, and the SIGKILL replaces the `killAt`-th I/O step of
 * writing and committing B (see io-crash-points.ts); without `killAt` it counts the steps.
 * Prints one step name per line on stdout so the parent knows how far it got.
 */
import { createConnectorContext, parseConfig, type Destination, type DestinationStream, type RecordBatch } from '@tributary/core';
import { installIoCrashPoints, type IoCrashPoints } from './io-crash-points.js';

export interface CrashRunnerInput {
  /** Package name or `file:` URL to import the destination from. */
  module: string;
  exportName?: string;
  /** `destination.name`, used to find the export when `exportName` is not given. */
  destinationName: string;
  config: Record<string, unknown>;
  streams: DestinationStream[];
  batchesA: RecordBatch[];
  batchesB: RecordBatch[];
  /** Crash at an I/O step of writing and committing B instead of after writing it; `killAt` unset: count the steps. */
  ioSteps?: { killAt?: number };
}

function isDestination(value: unknown, name: string): value is Destination {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'destination' && (value as { name?: unknown }).name === name;
}

// Should the test process die first (a timeout, a crash), a hung destination must not
// outlive it: the IPC channel the parent opened closes, and we go.
process.on('disconnect', () => process.exit(2));

async function main(): Promise<void> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  const input = JSON.parse(text) as CrashRunnerInput;
  // Before the destination's modules load, so that functions they take from fs at load time are the wrapped ones.
  const crashPoints: IoCrashPoints | undefined = input.ioSteps ? await installIoCrashPoints() : undefined;
  const exports = (await import(input.module)) as Record<string, unknown>;
  const destination = input.exportName !== undefined ? exports[input.exportName] : Object.values(exports).find((v) => isDestination(v, input.destinationName));
  if (!isDestination(destination, input.destinationName)) {
    throw new Error(`${input.module} exports no destination named "${input.destinationName}"${input.exportName ? ` as ${input.exportName}` : ''}`);
  }
  const config = parseConfig(destination.spec.connectionSpecification, input.config, 'config');
  const session = await destination.open(createConnectorContext(), config, input.streams);
  for (const batch of input.batchesA) await session.write(batch);
  await session.commit();
  process.stdout.write('committed-a\n');
  if (crashPoints) {
    // The write to stdout above is a socket write: armed only once it is flushed.
    await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
    crashPoints.arm(input.ioSteps?.killAt);
    for (const batch of input.batchesB) await session.write(batch);
    await session.commit();
    const steps = crashPoints.steps;
    crashPoints.disarm();
    process.stdout.write(`finished-b ${steps}\n`, () => process.kill(process.pid, 'SIGKILL'));
    return;
  }
  for (const batch of input.batchesB) await session.write(batch);
  // Killed only once the step line has been handed to the pipe, so the parent sees it.
  process.stdout.write('wrote-b\n', () => process.kill(process.pid, 'SIGKILL'));
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
