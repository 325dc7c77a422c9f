/**
 * Every message the CLI prints must validate against the Airbyte protocol schema. A source's
 * estimate is a hint the runtime does not check, but ESTIMATE's `row_estimate` and
 * `byte_estimate` are integers there: a fractional or non-finite estimate (a row count
 * extrapolated from a sample, a division by zero) must not make the output invalid.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { validateAirbyteMessage } from '@tributary/conformance';
import { main } from '../src/cli/main.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe-estimate-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function run(args: string[]): Promise<{ code: number; lines: string[] }> {
  const out: string[] = [];
  const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const code = await main(args);
    return { code, lines: out.join('').split('\n').filter(Boolean) };
  } finally {
    outSpy.mockRestore();
    errSpy.mockRestore();
  }
}

const SOURCE = `export default {
  kind: 'source', name: 'guessing', spec: { connectionSpecification: { type: 'object', properties: {} } },
  async check() {},
  async discover() {
    return { streams: [{ name: 'items', json_schema: { type: 'object', properties: { id: { type: 'integer' } } }, supported_sync_modes: ['full_refresh'] }] };
  },
  async *read() {
    // Extrapolated from a sample; the byte size per row was unknown (0 / 0).
    yield { kind: 'estimate', stream: 'items', rows: 2 * 1.25, bytes: 0 / 0 };
    yield { kind: 'estimate', stream: 'items', rows: 1e400, bytes: 1234.6 };
    yield { kind: 'record', stream: 'items', data: { id: 1 } };
    yield { kind: 'checkpoint', stream: 'items', state: { done: true } };
  },
};
`;

const DESTINATION = `export default {
  kind: 'destination', name: 'sink', delivery: 'append',
  spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append', 'overwrite'] },
  async check() {},
  async open() {
    return { async write() {}, async commit() {}, async close() {} };
  },
};
`;

function estimates(lines: string[]): unknown[] {
  return lines
    .map((l) => JSON.parse(l) as { type: string; trace?: { type: string; estimate?: unknown } })
    .filter((m) => m.type === 'TRACE' && m.trace?.type === 'ESTIMATE')
    .map((m) => m.trace?.estimate);
}

describe('ESTIMATE traces are valid Airbyte messages whatever the source estimated', () => {
  it('tributary read', async () => {
    await writeFile(join(dir, 'source.mjs'), SOURCE);
    await writeFile(join(dir, 'empty.json'), '{}');
    const { code, lines } = await run(['read', join(dir, 'source.mjs'), '--config', join(dir, 'empty.json')]);
    expect(code).toBe(0);
    expect(lines.flatMap((l) => validateAirbyteMessage(l).map((p) => `${l}: ${p}`))).toEqual([]);
    expect(estimates(lines)).toEqual([
      { name: 'items', type: 'STREAM', row_estimate: 3 },
      { name: 'items', type: 'STREAM', byte_estimate: 1235 },
    ]);
  });

  it('tributary sync --json', async () => {
    await writeFile(join(dir, 'source.mjs'), SOURCE);
    await writeFile(join(dir, 'destination.mjs'), DESTINATION);
    await writeFile(
      join(dir, 'sync.yaml'),
      `connection: estimates\nstate: ${join(dir, 'state')}\nsource: { connector: ${join(dir, 'source.mjs')} }\ndestination: { connector: ${join(dir, 'destination.mjs')} }\n`,
    );
    const { code, lines } = await run(['sync', join(dir, 'sync.yaml'), '--json']);
    expect(code).toBe(0);
    expect(lines.flatMap((l) => validateAirbyteMessage(l).map((p) => `${l}: ${p}`))).toEqual([]);
    expect(estimates(lines)).toEqual([
      { name: 'items', type: 'STREAM', row_estimate: 3 },
      { name: 'items', type: 'STREAM', byte_estimate: 1235 },
    ]);
  });
});
