import {
  TributaryError,
  checkpoint,
  defineSource,
  recordPage,
  streamKey,
  type ConfiguredAirbyteStream,
  type ConnectorContext,
  type SourceMessage,
  type StateBlob,
  type SyncState,
} from '@tributary/core';
import type pg from 'pg';
import { postgresConfigSchema, type PostgresConfig } from './config.js';
import { connect, ident, lostConnectionError, qualified } from './connection.js';
import { advanceSlot, assertCdcPrerequisites } from './cdc/slot.js';
import { liveStream } from './cdc/live-streams.js';
import { parseLsn } from './cdc/lsn.js';
import { readCdc, type CdcSharedState } from './cdc/read-cdc.js';
import { readByCursor, readChunks, type ChunkPosition, type CursorPosition } from './read/table-read.js';
import { cursorColumnOf, loadTables, streamOf, type TableInfo } from './schema/tables.js';
import { TypeRegistry } from './schema/values.js';

export { postgresConfigSchema, type PostgresConfig } from './config.js';
export { CHANGE_FIELDS, type ChangeOp } from './records.js';
export { formatLsn, parseLsn } from './cdc/lsn.js';
export { decodePgOutput, parseReplicationMessage, type PgOutputMessage } from './cdc/pgoutput.js';

/**
 * PostgreSQL source.
 *
 * - `full_refresh` streams: chunked by primary key (ctid without one), a checkpoint per
 *   chunk, so an interrupted refresh resumes after its last committed chunk.
 * - `incremental` streams, method `cdc`: a snapshot taken inside the replication slot's
 *   exported snapshot, then pgoutput changes from the slot's consistent point (no gap, no
 *   duplicate). The GLOBAL state holds the LSN; the slot's flush position is confirmed only
 *   in `ack()`, i.e. after the runtime committed everything before it.
 * - `incremental` streams, method `standard`: rows whose (cursor, primary key) follows the
 *   saved pair.
 */
export const postgresSource = defineSource({
  name: 'postgres',
  version: '0.1.0',
  spec: { connectionSpecification: postgresConfigSchema, supportsIncremental: true },

  async check(_ctx, config) {
    const client = await connect(config);
    try {
      await client.query('SELECT 1');
      if ((config.replication_method ?? 'cdc') === 'cdc') await assertCdcPrerequisites(client, config);
    } finally {
      await client.end().catch(() => undefined);
    }
  },

  async discover(_ctx, config) {
    const client = await connect(config);
    try {
      const types = await TypeRegistry.load(client);
      const tables = await loadTables(client, config.schemas ?? ['public']);
      return { streams: tables.map((t) => streamOf(t, types, config)) };
    } finally {
      await client.end().catch(() => undefined);
    }
  },

  read(ctx, config, catalog, state) {
    return readAll(ctx, config, catalog.streams, state);
  },

  async ack(_ctx, config, state) {
    if ((config.replication_method ?? 'cdc') !== 'cdc') return;
    const shared = state.shared as Partial<CdcSharedState> | undefined;
    if (!shared || typeof shared.lsn !== 'string' || typeof shared.slot !== 'string') return;
    const lsn = parseLsn(shared.lsn);
    const stream = liveStream(config, shared.slot);
    if (stream) stream.confirm(lsn);
    else await advanceSlot(config, shared.slot, lsn);
  },
});

export default postgresSource;

async function* readAll(ctx: ConnectorContext, config: PostgresConfig, configured: ConfiguredAirbyteStream[], state: SyncState): AsyncGenerator<SourceMessage> {
  const sql = await connect(config);
  try {
    const types = await TypeRegistry.load(sql);
    const tables = await loadTables(sql, config.schemas ?? ['public']);
    const tableOf = (c: ConfiguredAirbyteStream): TableInfo => {
      const namespace = c.stream.namespace ?? 'public';
      const table = tables.find((t) => t.namespace === namespace && t.name === c.stream.name);
      if (!table) throw new TributaryError('config', { userMessage: `Table ${namespace}.${c.stream.name} does not exist (any more): run discover again.` });
      return table;
    };
    const cdc = (config.replication_method ?? 'cdc') === 'cdc';
    const chunkSize = config.chunk_size ?? 10_000;
    const cdcStreams: ConfiguredAirbyteStream[] = [];
    for (const c of configured) {
      if (ctx.signal.aborted) return;
      const table = tableOf(c);
      const saved = state.streams[streamKey(c.stream.name, c.stream.namespace)];
      if (c.sync_mode === 'full_refresh') yield* readFullRefresh(sql, c, table, types, chunkSize, saved);
      else if (cdc) cdcStreams.push(c);
      else yield* readIncremental(ctx, sql, c, table, types, config, saved);
    }
    if (cdcStreams.length > 0 && !ctx.signal.aborted) yield* readCdc({ ctx, config, sql, types, tables, streams: cdcStreams, state });
  } catch (error) {
    // A dropped connection (a snapshot's COPY cut short, a catalog query) is transient.
    throw lostConnectionError(error, config);
  } finally {
    await sql.end().catch(() => undefined);
  }
}

async function* readFullRefresh(
  sql: pg.Client,
  c: ConfiguredAirbyteStream,
  table: TableInfo,
  types: TypeRegistry,
  chunkSize: number,
  saved: StateBlob | undefined,
): AsyncGenerator<SourceMessage> {
  // Only a state this mode wrote resumes a refresh; anything else starts it over.
  const resume = saved && 'full_refresh' in saved ? (saved.full_refresh as ChunkPosition | 'done') : null;
  if (resume === 'done') {
    yield checkpoint(c.stream.name, { full_refresh: 'done' }, c.stream.namespace);
    return;
  }
  for await (const chunk of readChunks(sql, table, types, chunkSize, resume)) {
    if (chunk.rows.length > 0) yield recordPage(c.stream.name, chunk.rows, c.stream.namespace);
    if (chunk.next !== undefined) yield checkpoint(c.stream.name, { full_refresh: chunk.next ?? 'done' } as StateBlob, c.stream.namespace);
  }
}

async function* readIncremental(
  ctx: ConnectorContext,
  sql: pg.Client,
  c: ConfiguredAirbyteStream,
  table: TableInfo,
  types: TypeRegistry,
  config: PostgresConfig,
  saved: StateBlob | undefined,
): AsyncGenerator<SourceMessage> {
  const cursor = c.cursor_field?.[0] ?? cursorColumnOf(table, config);
  if (!cursor || table.primaryKey.length === 0) {
    throw new TributaryError('config', {
      userMessage: `Stream ${table.namespace}.${table.name} cannot be read incrementally: it needs a cursor column and a primary key.`,
    });
  }
  // The state names the column its position belongs to: a position of another column (the
  // cursor was changed in `cursor_fields` or the catalog) is no position in this one — its
  // value failed to cast, or skipped every row below it. Such a stream is read from the start.
  const savedColumn = saved && typeof saved.cursor_field === 'string' ? saved.cursor_field : undefined;
  const sameColumn = savedColumn === undefined || savedColumn === cursor;
  if (!sameColumn) {
    ctx.logger.warn(`cursor of ${table.namespace}.${table.name} changed from ${savedColumn} to ${cursor}: reading the table from the start`, {
      stream: `${table.namespace}.${table.name}`,
    });
  }
  const start = sameColumn && saved && 'cursor' in saved && saved.cursor !== null ? (saved as unknown as CursorPosition) : undefined;
  let last: CursorPosition | undefined = start;
  for await (const chunk of readByCursor(sql, table, types, cursor, config.chunk_size ?? 10_000, start)) {
    if (chunk.rows.length > 0) yield recordPage(c.stream.name, chunk.rows, c.stream.namespace);
    last = chunk.last;
    const position = last ? { cursor_field: cursor, cursor: last.cursor, ...(last.key ? { key: last.key } : {}), ...(last.since !== undefined ? { since: last.since } : {}) } : {};
    yield checkpoint(c.stream.name, position as StateBlob, c.stream.namespace);
  }
  // Rows whose cursor is NULL have no place in the cursor order: they are never read (nor is
  // an update that set a read row's cursor to NULL). Say so instead of leaving them out silently.
  const nulls = await sql.query<{ found: string }>(`SELECT EXISTS (SELECT 1 FROM ${qualified(table.namespace, table.name)} WHERE ${ident(cursor)} IS NULL)::text AS found`);
  if (nulls.rows[0]?.found === 'true') {
    ctx.logger.warn(`rows of ${table.namespace}.${table.name} whose cursor ${cursor} is NULL are not read`, { stream: `${table.namespace}.${table.name}`, cursor });
  }
}
