/**
 * `tributary lake …`: look at what landed, point-in-time reads, and maintenance.
 * Contributed to the core CLI through package.json `tributaryCommands`; the default export
 * takes the arguments after `lake` and resolves with the exit code.
 */
import { parseArgs } from 'node:util';
import { TributaryError } from '@tributary/core';
import { loadLakeState } from './commit-log.js';
import { loadLakeConfig } from './config-file.js';
import { applyRetention, compactLake } from './maintenance.js';
import { queryLake, readLatestAsOf } from './reader.js';
import { openExistingLake } from './storage/open-store.js';

export { loadLakeConfig } from './config-file.js';

const USAGE = `Usage:
  tributary lake query "<SQL>" --config <file> [--tenant T] [--format table|jsonl]
      SQL (DuckDB) over the lake: one view per stream (named after it), \`events\` (all streams), \`quarantine\`.
  tributary lake as-of --stream S --config <file> [--time <ISO>] [--tenant T] [--key entity_key|customer_id] [--format …]
      Latest row per key with event_time ≤ time (default now); deleted keys are left out.
  tributary lake status --config <file>
      Visible files, rows and quarantined records per stream and tenant.
  tributary lake compact --config <file> [--stream S] [--tenant T] [--min-files N] [--grace-ms MS] [--orphan-age-ms MS]
      Merges small files per stream/tenant/partition; deletes removed files after the grace period and files of crashed commits.
  tributary lake retention --config <file> (--keep-days N | --before <ISO>) [--stream S] [--tenant T] [--grace-ms MS]
<file>: a lake config (JSON) or a sync file whose destination is the lake.`;

function usage(message: string): TributaryError {
  return new TributaryError('config', { userMessage: `${message}\n\n${USAGE}` });
}

function print(rows: readonly Record<string, unknown>[], format: string): void {
  if (format === 'jsonl') {
    for (const row of rows) process.stdout.write(`${JSON.stringify(row)}\n`);
    return;
  }
  if (rows.length === 0) {
    process.stdout.write('(no rows)\n');
    return;
  }
  const columns = Object.keys(rows[0]!);
  const cell = (v: unknown): string => {
    const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
    return s.length > 60 ? `${s.slice(0, 59)}…` : s;
  };
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]): string => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  const out = [line(columns), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))];
  process.stdout.write(`${out.join('\n')}\n(${rows.length} row${rows.length === 1 ? '' : 's'})\n`);
}

/**
 * A count given in decimal digits only. `Number` read an empty value (`--keep-days=`, as a
 * script with an unset variable passes it) or blanks as 0, so retention removed everything
 * before today and `--grace-ms` / `--orphan-age-ms` deleted files at once; it also took
 * `0x10`, `1e3` and `2.0`.
 */
function intOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw usage(`--${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

export default async function lakeCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        tenant: { type: 'string' },
        stream: { type: 'string' },
        time: { type: 'string' },
        key: { type: 'string' },
        format: { type: 'string', default: 'table' },
        'min-files': { type: 'string' },
        'keep-days': { type: 'string' },
        before: { type: 'string' },
        'grace-ms': { type: 'string' },
        'orphan-age-ms': { type: 'string' },
        help: { type: 'boolean' },
      },
    });
  } catch (error) {
    throw usage((error as Error).message);
  }
  const { values, positionals } = parsed;
  const [sub, ...rest] = positionals;
  if (values.help || sub === undefined || sub === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return sub === undefined && !values.help ? 2 : 0;
  }
  if (values.format !== 'table' && values.format !== 'jsonl') throw usage('--format must be table or jsonl');
  if (!values.config) throw usage(`tributary lake ${sub} needs --config <lake config or sync file>`);
  const config = await loadLakeConfig(values.config);
  const tenant = values.tenant !== undefined ? { tenant: values.tenant } : {};
  const graceMs = intOption(values['grace-ms'], 'grace-ms');
  const orphanAgeMs = intOption(values['orphan-age-ms'], 'orphan-age-ms');

  switch (sub) {
    case 'query': {
      const sql = rest.join(' ').trim();
      if (!sql) throw usage('tributary lake query needs the SQL, e.g. tributary lake query "select count(*) from events" --config lake.json');
      print(await queryLake(config, sql, tenant), values.format);
      return 0;
    }
    case 'as-of': {
      if (!values.stream) throw usage('tributary lake as-of needs --stream');
      if (values.key !== undefined && values.key !== 'entity_key' && values.key !== 'customer_id') throw usage('--key must be entity_key or customer_id');
      const rows = await readLatestAsOf(config, {
        stream: values.stream,
        ...(values.time !== undefined ? { asOf: values.time } : {}),
        ...tenant,
        ...(values.key !== undefined ? { key: values.key as 'entity_key' | 'customer_id' } : {}),
      });
      print(values.format === 'jsonl' ? rows as unknown as Record<string, unknown>[] : rows.map(({ payload, ...envelope }) => ({ ...envelope, payload })), values.format);
      return 0;
    }
    case 'status': {
      const store = await openExistingLake(config);
      try {
        const state = await loadLakeState(store);
        const groups = new Map<string, { stream: string; tenant: string; files: number; rows: number; bytes: number }>();
        for (const f of state.files.values()) {
          const key = `${f.stream}\u0000${f.tenant}`;
          const g = groups.get(key) ?? { stream: f.stream, tenant: f.tenant, files: 0, rows: 0, bytes: 0 };
          g.files++;
          g.rows += f.rows;
          g.bytes += f.bytes;
          groups.set(key, g);
        }
        const quarantined = new Map<string, number>();
        for (const q of state.quarantine) quarantined.set(q.stream, (quarantined.get(q.stream) ?? 0) + q.records);
        process.stdout.write(`lake ${store.location} at commit ${state.seq}\n`);
        print([...groups.values()].sort((a, b) => a.stream.localeCompare(b.stream) || a.tenant.localeCompare(b.tenant)), values.format);
        if (quarantined.size > 0) print([...quarantined].map(([stream, records]) => ({ stream, quarantined: records })), values.format);
      } finally {
        store.close();
      }
      return 0;
    }
    case 'compact': {
      const minFiles = intOption(values['min-files'], 'min-files');
      const result = await compactLake(config, {
        ...(values.stream !== undefined ? { stream: values.stream } : {}),
        ...tenant,
        ...(minFiles !== undefined ? { minFiles } : {}),
        ...(graceMs !== undefined ? { graceMs } : {}),
        ...(orphanAgeMs !== undefined ? { orphanAgeMs } : {}),
      });
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return 0;
    }
    case 'retention': {
      const keepDays = intOption(values['keep-days'], 'keep-days');
      if (keepDays === undefined && values.before === undefined) throw usage('tributary lake retention needs --keep-days N or --before <ISO time>');
      const result = await applyRetention(config, {
        ...(keepDays !== undefined ? { keepDays } : {}),
        ...(values.before !== undefined ? { before: values.before } : {}),
        ...(values.stream !== undefined ? { stream: values.stream } : {}),
        ...tenant,
        ...(graceMs !== undefined ? { graceMs } : {}),
      });
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return 0;
    }
    default:
      throw usage(`Unknown lake command "${sub}"`);
  }
}
