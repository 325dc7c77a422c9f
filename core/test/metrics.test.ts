import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetricsRegistry } from '../src/index.js';

const BIN = fileURLToPath(new URL('../bin/tributary.js', import.meta.url));

describe('metrics registry', () => {
  it('keeps the last value per name and labels, renders the Prometheus text format with escaped labels', () => {
    let clock = 1;
    const metrics = createMetricsRegistry(() => clock++);
    metrics.gauge('tributary_lag_bytes', 10, { slot: 'a' }, 'Lag of a slot');
    metrics.gauge('tributary_lag_bytes', 12, { slot: 'a' });
    metrics.gauge('tributary_lag_bytes', 3, { slot: 'b"\\\n' });
    metrics.gauge('tributary_queue', 7);
    metrics.gauge('tributary_queue', Number.NaN);
    expect(metrics.samples().map((s) => [s.name, s.labels, s.value])).toEqual([
      ['tributary_lag_bytes', { slot: 'a' }, 12],
      ['tributary_lag_bytes', { slot: 'b"\\\n' }, 3],
      ['tributary_queue', {}, 7],
    ]);
    expect(metrics.renderPrometheus()).toBe(
      [
        '# HELP tributary_lag_bytes Lag of a slot',
        '# TYPE tributary_lag_bytes gauge',
        'tributary_lag_bytes{slot="a"} 12',
        'tributary_lag_bytes{slot="b\\"\\\\\\n"} 3',
        '# TYPE tributary_queue gauge',
        'tributary_queue 7',
        '',
      ].join('\n'),
    );
    expect(() => metrics.gauge('9bad', 1)).toThrow(/Invalid metric name "9bad"/);
    expect(() => metrics.gauge('tributary_ok', 1, { 'bad-label': 'x' })).toThrow(/Invalid label "bad-label"/);
  });
});

describe('tributary sync --metrics-file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tributary-metrics-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("writes the connectors' gauges to the file", async () => {
    // A source that sets a gauge, loaded by path.
    await writeFile(
      join(dir, 'gauge-source.mjs'),
      [
        "const stream = { name: 'things', json_schema: { type: 'object', properties: { id: { type: 'integer' } } }, supported_sync_modes: ['full_refresh'], source_defined_primary_key: [['id']] };",
        'export default {',
        "  kind: 'source', name: 'gauge-source', spec: { connectionSpecification: { type: 'object', properties: {} } },",
        '  async check() {}, async discover() { return { streams: [stream] }; },',
        '  async *read(ctx) {',
        "    ctx.metrics.gauge('tributary_test_backlog', 42, { shard: 's1' }, 'Test backlog');",
        "    yield { kind: 'record', stream: 'things', data: { id: 1 } };",
        "    yield { kind: 'checkpoint', stream: 'things', state: { done: true } };",
        '  },',
        '};',
      ].join('\n'),
    );
    await writeFile(
      join(dir, 'sync.yaml'),
      ['connection: metrics', 'source: { connector: ./gauge-source.mjs, config: {} }', 'destination: { connector: local, config: { directory: ./out } }'].join('\n'),
    );
    await promisify(execFile)(process.execPath, [BIN, 'sync', 'sync.yaml', '--json', '--metrics-file', 'metrics.prom'], { cwd: dir });
    expect(await readFile(join(dir, 'metrics.prom'), 'utf8')).toBe('# HELP tributary_test_backlog Test backlog\n# TYPE tributary_test_backlog gauge\ntributary_test_backlog{shard="s1"} 42\n');
  });
});
