/**
 * `tributary read` and `tributary write` run a connector on its own; they must run it under
 * the policies it declares, as `tributary sync` does: the source's `retry` (the default of
 * its `ctx.call`), the destination's `retry` and `rateLimit` (which apply to every `write`
 * and `commit`). The connectors are real modules loaded by path, as a user gives them.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli/main.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function run(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err.push(String(chunk));
    return true;
  });
  const stdin = input === undefined ? undefined : await import('node:stream').then(({ Readable }) => Readable.from([input]));
  const originalStdin = Object.getOwnPropertyDescriptor(process, 'stdin');
  if (stdin) Object.defineProperty(process, 'stdin', { value: stdin, configurable: true });
  try {
    return { code: await main(args), stdout: out.join(''), stderr: err.join('') };
  } finally {
    outSpy.mockRestore();
    errSpy.mockRestore();
    if (originalStdin) Object.defineProperty(process, 'stdin', originalStdin);
  }
}

/** A network error: `ctx.call` and the runtime treat it as transient and retry it. */
const FLAKY = `Object.assign(new Error('connection reset by peer'), { code: 'ECONNRESET' })`;

describe('tributary read runs the source under its declared retry policy', () => {
  it('a source declaring 8 attempts gets 8, not the default 5', async () => {
    const path = join(dir, 'patient-source.mjs');
    await writeFile(
      path,
      `let calls = 0;
export default {
  kind: 'source', name: 'patient', spec: { connectionSpecification: { type: 'object', properties: {} } },
  // The peer fails six times in a row before it answers; the source knows and says so.
  retry: { maxAttempts: 8, baseDelayMs: 1, maxDelayMs: 1 },
  async check() {},
  async discover() {
    return { streams: [{ name: 'items', json_schema: { type: 'object', properties: { id: { type: 'integer' } } }, supported_sync_modes: ['full_refresh'] }] };
  },
  async *read(ctx) {
    const id = await ctx.call(async () => { if (++calls <= 6) throw ${FLAKY}; return calls; });
    yield { kind: 'record', stream: 'items', data: { id } };
    yield { kind: 'checkpoint', stream: 'items', state: { done: true } };
  },
};
`,
    );
    await writeFile(join(dir, 'empty.json'), '{}');
    const result = await run(['read', path, '--config', join(dir, 'empty.json')]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const records = result.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; record?: { data: unknown } }).filter((m) => m.type === 'RECORD');
    expect(records.map((m) => m.record?.data)).toEqual([{ id: 7 }]);
  });
});

describe('tributary write runs the destination under its declared policies', () => {
  it('a destination declaring 8 attempts gets 8 for its commit, its batching is used, and its STATE is echoed', async () => {
    const path = join(dir, 'patient-destination.mjs');
    await writeFile(
      path,
      `let commits = 0;
export default {
  kind: 'destination', name: 'patient', delivery: 'append',
  spec: { connectionSpecification: { type: 'object', properties: {} }, supportedDestinationSyncModes: ['append'] },
  retry: { maxAttempts: 8, baseDelayMs: 1, maxDelayMs: 1 },
  batching: { maxRecords: 2 },
  async check() {},
  async open() {
    return {
      async write(batch) { globalThis.probeBatchSizes.push(batch.records.length); },
      async commit() { if (++commits <= 6) throw ${FLAKY}; },
      async close() {},
    };
  },
};
`,
    );
    const catalog = {
      streams: [
        {
          stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['full_refresh'] },
          sync_mode: 'full_refresh',
          destination_sync_mode: 'append',
        },
      ],
    };
    await writeFile(join(dir, 'catalog.json'), JSON.stringify(catalog));
    await writeFile(join(dir, 'empty.json'), '{}');
    const input =
      [
        { type: 'RECORD', record: { stream: 'items', data: { id: 1 }, emitted_at: 0 } },
        { type: 'RECORD', record: { stream: 'items', data: { id: 2 }, emitted_at: 0 } },
        { type: 'RECORD', record: { stream: 'items', data: { id: 3 }, emitted_at: 0 } },
        { type: 'STATE', state: { type: 'STREAM', stream: { stream_descriptor: { name: 'items' }, stream_state: { n: 1 } } } },
      ]
        .map((m) => JSON.stringify(m))
        .join('\n') + '\n';
    const sizes: number[] = [];
    (globalThis as { probeBatchSizes?: number[] }).probeBatchSizes = sizes;
    const result = await run(['write', path, '--config', join(dir, 'empty.json'), '--catalog', join(dir, 'catalog.json')], input);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const states = result.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string }).filter((m) => m.type === 'STATE');
    expect(states).toHaveLength(1);
    expect(sizes).toEqual([2, 1]);
  });
});
