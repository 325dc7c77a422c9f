/**
 * `tributary lake …`: look at what landed, point-in-time reads, and maintenance.
 * Contributed to the core CLI through package.json `tributaryCommands`; the default export
 * takes the arguments after `lake` and resolves with the exit code.
 */
import { parseArgs } from 'node:util';
import { TributaryError } from '@tributary/core';
import { loadLakeState, type LakeState } from './commit-log.js';
import type { LakeConfig } from './config.js';
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
  tributary lake status --config <file> [--stream S] [--tenant T] [--format …]
      Visible files, rows and quarantined records per stream and tenant.
  tributary lake compact --config <file> [--stream S] [--tenant T] [--min-files N] [--grace-ms MS] [--orphan-age-ms MS]
      Merges small files per stream/tenant/partition; deletes removed files after the grace period and files of crashed commits.
  tributary lake retention --config <file> (--keep-days N | --before <ISO>) [--stream S] [--tenant T] [--grace-ms MS]
<file>: a lake config (JSON) or a sync file whose destination is the lake.`;

function usage(message: string): TributaryError {
  return new TributaryError('config', { userMessage: `${message}\n\n${USAGE}` });
}

/**
 * Characters that hide or change what a table shows: controls (a newline split a row, an
 * escape sequence drove the terminal), format characters (zero-width, bidi overrides), line
 * and paragraph separators, unpaired surrogates, and spaces other than U+0020 (a no-break
 * space looks like one).
 */
const UNSHOWABLE_SOURCE = String.raw`[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]|(?! )\p{Zs}`;
const UNSHOWABLE = new RegExp(UNSHOWABLE_SOURCE, 'u');
const UNSHOWABLE_ALL = new RegExp(UNSHOWABLE_SOURCE, 'gu');
const UNSHOWABLE_OR_MARK = new RegExp(`${UNSHOWABLE_SOURCE}|\\p{M}`, 'gu');

/**
 * A string as a table shows it: as it is when that shows it unambiguously, else as a JSON
 * string with the hidden characters escaped (`\n`, `\u200b`): an empty or blank-edged
 * string (`"acme "`), one holding UNSHOWABLE characters, and one not in Unicode's composed
 * form (NFC), whose combining marks are escaped too, so that `é` and `e\u0301` (two tenants
 * to the lake, which compares ids as sent) do not look alike.
 */
function shownText(text: string): string {
  const composed = text === text.normalize('NFC');
  if (text !== '' && text.trim() === text && !UNSHOWABLE.test(text) && composed) return text;
  // Each UTF-16 unit as JSON writes it (a character beyond U+FFFF is two).
  const escape = (c: string): string => Array.from({ length: c.length }, (_, i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`).join('');
  return JSON.stringify(text).replace(composed ? UNSHOWABLE_ALL : UNSHOWABLE_OR_MARK, escape);
}

/** Longest table cell (characters) outside the `whole` columns; longer values are cut with `…`. */
const CELL_CHARS = 60;

/** Prints rows as JSON lines or as a table; a table cuts no value of the `whole` columns (identifiers the user passes back, e.g. to `--tenant`). */
function print(rows: readonly Record<string, unknown>[], format: string, whole: readonly string[] = []): void {
  if (format === 'jsonl') {
    for (const row of rows) process.stdout.write(`${JSON.stringify(row)}\n`);
    return;
  }
  if (rows.length === 0) {
    process.stdout.write('(no rows)\n');
    return;
  }
  const columns = Object.keys(rows[0]!);
  const cell = (v: unknown, column: string): string => {
    const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : typeof v === 'string' ? shownText(v) : String(v);
    return s.length > CELL_CHARS && !whole.includes(column) ? `${s.slice(0, CELL_CHARS - 1)}…` : s;
  };
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c], c).length)));
  const line = (values: string[]): string => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  const out = [line(columns), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(columns.map((c) => cell(r[c], c))))];
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

/**
 * The options each command reads, besides `--config`, `--format` and `--help`. Any other is
 * refused: ignored, `status --tenant T` listed every tenant, and `compact --keep-days 30`
 * compacted without a word that it applied no retention.
 */
const OPTIONS_OF: Readonly<Record<string, readonly string[]>> = {
  query: ['tenant'],
  'as-of': ['stream', 'time', 'tenant', 'key'],
  status: ['stream', 'tenant'],
  compact: ['stream', 'tenant', 'min-files', 'grace-ms', 'orphan-age-ms'],
  retention: ['keep-days', 'before', 'stream', 'tenant', 'grace-ms'],
};
const COMMON_OPTIONS = new Set(['config', 'format', 'help']);

function checkOptions(sub: string, given: Record<string, unknown>): void {
  const allowed = OPTIONS_OF[sub];
  if (allowed === undefined) return;
  const foreign = Object.keys(given).filter((name) => given[name] !== undefined && !COMMON_OPTIONS.has(name) && !allowed.includes(name));
  if (foreign.length > 0) {
    throw usage(`${foreign.map((name) => `--${name}`).join(', ')} ${foreign.length === 1 ? 'does' : 'do'} not apply to tributary lake ${sub} (it takes ${allowed.map((name) => `--${name}`).join(', ')})`);
  }
}

/** A tenant id compared loosely: letter case and Unicode form (NFKC) aside. */
const looseTenant = (tenant: string): string => tenant.normalize('NFKC').toLowerCase();

/**
 * Says on stderr when the lake has no file of the `--stream` given (data or quarantine), or
 * no data file of the `--tenant` given (of that stream, when given), naming the streams
 * that differ from it only by a namespace (`public.orders` for `orders`: a stream's files
 * are kept under its namespaced key, while the lake config's `streams` also takes the bare
 * name) or letter case, and the tenants that differ from it only in letter case or Unicode
 * form (the lake compares tenant ids exactly as sent). Such an option read nothing and
 * removed nothing, and the command exited 0 as if there had been nothing to do.
 */
function noteUnmatched(state: LakeState, stream: string | undefined, tenant: string | undefined): void {
  if (stream !== undefined) {
    const streams = new Set([...[...state.files.values()].map((f) => f.stream), ...state.quarantine.map((q) => q.stream)]);
    if (!streams.has(stream)) {
      const lower = stream.toLowerCase();
      const similar = [...streams].filter((s) => s.toLowerCase() === lower || s.toLowerCase().endsWith(`.${lower}`)).sort();
      const hint = similar.length > 0 ? `; streams of that name in a namespace or in another letter case: ${similar.map((s) => JSON.stringify(s)).join(', ')}` : '';
      process.stderr.write(`lake: the lake has no file of stream ${JSON.stringify(stream)}${hint}\n`);
      return;
    }
  }
  if (tenant === undefined) return;
  const tenants = new Set<string>();
  for (const f of state.files.values()) if (stream === undefined || f.stream === stream) tenants.add(f.tenant);
  if (tenants.has(tenant)) return;
  const loose = looseTenant(tenant);
  const similar = [...tenants].filter((t) => looseTenant(t) === loose).sort();
  const where = stream !== undefined ? ` of stream ${JSON.stringify(stream)}` : '';
  const hint = similar.length > 0 ? `; tenants that differ from it only in letter case or Unicode form: ${similar.map((t) => JSON.stringify(t)).join(', ')}` : '';
  process.stderr.write(`lake: no data file${where} belongs to tenant ${JSON.stringify(tenant)} (tenant ids are compared exactly)${hint}\n`);
}

/** Loads the lake's state once for `noteUnmatched` when `stream` or `tenant` is given (a missing lake fails here as the command would). */
async function checkFilters(config: LakeConfig, stream: string | undefined, tenant: string | undefined): Promise<void> {
  if (stream === undefined && tenant === undefined) return;
  const store = await openExistingLake(config);
  try {
    noteUnmatched(await loadLakeState(store), stream, tenant);
  } finally {
    store.close();
  }
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
  checkOptions(sub, values);
  if (!values.config) throw usage(`tributary lake ${sub} needs --config <lake config or sync file>`);
  const config = await loadLakeConfig(values.config);
  const tenant = values.tenant !== undefined ? { tenant: values.tenant } : {};
  const graceMs = intOption(values['grace-ms'], 'grace-ms');
  const orphanAgeMs = intOption(values['orphan-age-ms'], 'orphan-age-ms');

  switch (sub) {
    case 'query': {
      const sql = rest.join(' ').trim();
      if (!sql) throw usage('tributary lake query needs the SQL, e.g. tributary lake query "select count(*) from events" --config lake.json');
      await checkFilters(config, undefined, values.tenant);
      print(await queryLake(config, sql, tenant), values.format);
      return 0;
    }
    case 'as-of': {
      if (!values.stream) throw usage('tributary lake as-of needs --stream');
      if (values.key !== undefined && values.key !== 'entity_key' && values.key !== 'customer_id') throw usage('--key must be entity_key or customer_id');
      await checkFilters(config, values.stream, values.tenant);
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
          if ((values.stream !== undefined && f.stream !== values.stream) || (values.tenant !== undefined && f.tenant !== values.tenant)) continue;
          const key = `${f.stream}\u0000${f.tenant}`;
          const g = groups.get(key) ?? { stream: f.stream, tenant: f.tenant, files: 0, rows: 0, bytes: 0 };
          g.files++;
          g.rows += f.rows;
          g.bytes += f.bytes;
          groups.set(key, g);
        }
        // Quarantined records are kept per stream, not per tenant: not counted for one tenant.
        const quarantined = new Map<string, number>();
        if (values.tenant === undefined) {
          for (const q of state.quarantine) if (values.stream === undefined || q.stream === values.stream) quarantined.set(q.stream, (quarantined.get(q.stream) ?? 0) + q.records);
        }
        process.stdout.write(`lake ${store.location} at commit ${state.seq}\n`);
        noteUnmatched(state, values.stream, values.tenant);
        // Sorted by code unit, not by locale: `Acme` and `acme`, `é` and `e\u0301` stay distinct rows in a stable order.
        const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
        print([...groups.values()].sort((a, b) => byCodeUnit(a.stream, b.stream) || byCodeUnit(a.tenant, b.tenant)), values.format, ['stream', 'tenant']);
        if (quarantined.size > 0) print([...quarantined].map(([stream, records]) => ({ stream, quarantined: records })), values.format, ['stream']);
      } finally {
        store.close();
      }
      return 0;
    }
    case 'compact': {
      const minFiles = intOption(values['min-files'], 'min-files');
      await checkFilters(config, values.stream, values.tenant);
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
      // Both given, --before won without a word, and removed up to another cutoff than --keep-days said.
      if (keepDays !== undefined && values.before !== undefined) throw usage('tributary lake retention takes --keep-days N or --before <ISO time>, not both');
      await checkFilters(config, values.stream, values.tenant);
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
