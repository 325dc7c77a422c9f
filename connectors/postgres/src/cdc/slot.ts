import type pg from 'pg';
import { TributaryError } from '@tributary/core';
import type { PostgresConfig } from '../config.js';
import { connect, ident, qualified } from '../connection.js';
import { parseLsn, type Lsn } from './lsn.js';
import type { TableInfo } from '../schema/tables.js';

export interface SlotInfo {
  plugin: string;
  database: string;
  active: boolean;
  confirmedFlush: Lsn | undefined;
  /** WAL bytes between the server's current position and the slot's confirmed position. */
  lagBytes: number | undefined;
}

export async function slotInfo(client: pg.Client, slot: string): Promise<SlotInfo | undefined> {
  const result = await client.query<{
    plugin: string | null;
    database: string | null;
    active: boolean | string;
    confirmed_flush_lsn: string | null;
    lag: string | null;
  }>(
    `SELECT plugin, database, active, confirmed_flush_lsn::text,
            pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag
       FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  const row = result.rows[0];
  if (!row) return undefined;
  return {
    plugin: row.plugin ?? '',
    database: row.database ?? '',
    active: row.active === true || row.active === 't',
    confirmedFlush: row.confirmed_flush_lsn ? parseLsn(row.confirmed_flush_lsn) : undefined,
    lagBytes: row.lag === null ? undefined : Number(row.lag),
  };
}

/**
 * Why PostgreSQL invalidated the slot, or undefined while it can stream. An invalidated slot
 * still exists but will never stream again: `wal_status = 'lost'` (13+; the WAL it needed was
 * removed, beyond `max_slot_wal_keep_size`), and from 17 on `invalidation_reason`
 * (`wal_removed`, `rows_removed`, `wal_level_insufficient`, `idle_timeout`).
 */
export async function slotInvalidation(client: pg.Client, slot: string): Promise<string | undefined> {
  const version = await serverVersion(client);
  if (version < 130_000) return undefined;
  const reason = version >= 170_000 ? 'invalidation_reason' : 'NULL::text';
  const result = await client.query<{ wal_status: string | null; reason: string | null }>(
    `SELECT wal_status, ${reason} AS reason FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  const row = result.rows[0];
  if (!row) return undefined;
  if (row.reason) return row.reason;
  return row.wal_status === 'lost' ? 'wal_removed' : undefined;
}

/**
 * What logical replication needs from the server and the role; each missing piece is a
 * `config` error that says exactly what to change.
 */
export async function assertCdcPrerequisites(client: pg.Client, config: PostgresConfig): Promise<void> {
  const settings = await client.query<{ wal_level: string; replication: boolean | string; superuser: boolean | string; slots: string }>(
    `SELECT current_setting('wal_level') AS wal_level, r.rolreplication AS replication, r.rolsuper AS superuser,
            current_setting('max_replication_slots') AS slots
       FROM pg_roles r WHERE r.rolname = current_user`,
  );
  const row = settings.rows[0];
  if (!row) return;
  if (row.wal_level !== 'logical') {
    throw new TributaryError('config', {
      userMessage: `CDC needs wal_level = logical, but the server runs with wal_level = ${row.wal_level}. Set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL, or use replication_method "standard".`,
    });
  }
  const truthy = (v: boolean | string): boolean => v === true || v === 't';
  if (!truthy(row.replication) && !truthy(row.superuser)) {
    throw new TributaryError('config', {
      userMessage: `CDC needs a role with the REPLICATION attribute, and user "${config.username}" lacks it. Run ALTER ROLE "${config.username}" REPLICATION; as a superuser, or use replication_method "standard".`,
    });
  }
  if (Number(row.slots) === 0) {
    throw new TributaryError('config', {
      userMessage: 'CDC needs a replication slot, but max_replication_slots = 0. Raise it in postgresql.conf and restart PostgreSQL.',
    });
  }
}

/** `server_version_num`, e.g. 180004. */
async function serverVersion(client: pg.Client): Promise<number> {
  const result = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
  return Number(result.rows[0]!.v);
}

/** From PostgreSQL 18 on, a publication can stream stored generated columns (`pubgencols = 's'`). */
const GENERATED_COLUMNS_FROM = 180_000;

/**
 * Makes sure the publication exists and covers `tables` (creating or extending it when
 * managed). Returns the tables it had to add (all of them when it created the publication):
 * their changes up to now were not published.
 */
export async function ensurePublication(client: pg.Client, config: PostgresConfig, tables: readonly TableInfo[]): Promise<TableInfo[]> {
  const name = config.publication_name ?? 'tributary_publication';
  const generated = (await serverVersion(client)) >= GENERATED_COLUMNS_FROM;
  const existing = await client.query<{ puballtables: boolean | string; pubviaroot: boolean | string; pubgencols: string | null }>(
    `SELECT puballtables, pubviaroot, ${generated ? 'pubgencols' : 'NULL AS pubgencols'} FROM pg_publication WHERE pubname = $1`,
    [name],
  );
  const manage = config.manage_publication !== false;
  if (existing.rows.length === 0) {
    if (!manage) {
      throw new TributaryError('config', {
        userMessage: `Publication "${name}" does not exist. Create it (CREATE PUBLICATION ${ident(name)} FOR TABLE …) or set manage_publication: true.`,
      });
    }
    await assertReplicaIdentity(client, name, tables);
    const list = tables.map((t) => qualified(t.namespace, t.name)).join(', ');
    // Changes of partitions are published as their root table, the stream the user selected;
    // stored generated columns are published so that streamed rows carry them like snapshot rows.
    const options = ['publish_via_partition_root = true', ...(generated ? ['publish_generated_columns = stored'] : [])].join(', ');
    await client.query(tables.length > 0 ? `CREATE PUBLICATION ${ident(name)} FOR TABLE ${list} WITH (${options})` : `CREATE PUBLICATION ${ident(name)}`);
    return [...tables];
  }
  const publication = existing.rows[0]!;
  // A publication made before this option was set (or by an older version of this connector).
  // Unmanaged ones are left alone: `publishedColumns` keeps the snapshot to what they stream.
  if (generated && manage && publication.pubgencols !== 's') await client.query(`ALTER PUBLICATION ${ident(name)} SET (publish_generated_columns = stored)`);
  const truthy = (v: boolean | string): boolean => v === true || v === 't';
  if (tables.some((t) => t.partitioned) && !truthy(publication.pubviaroot)) {
    // Without it, partitions' changes arrive under the partitions' names, not the selected table's.
    if (!manage) {
      throw new TributaryError('config', {
        userMessage: `Publication "${name}" publishes partitioned tables by partition; run ALTER PUBLICATION ${ident(
          name,
        )} SET (publish_via_partition_root = true) or set manage_publication: true.`,
      });
    }
    await client.query(`ALTER PUBLICATION ${ident(name)} SET (publish_via_partition_root = true)`);
  }
  if (truthy(publication.puballtables)) return [];
  // Direct members (pg_publication_rel) and what the publication covers (tables, schemas).
  const members = await client.query<{ schemaname: string; tablename: string }>(
    `SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1
     UNION
     SELECT n.nspname, c.relname FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
       JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.pubname = $1`,
    [name],
  );
  const have = new Set(members.rows.map((m) => `${m.schemaname}.${m.tablename}`));
  const missing = tables.filter((t) => !have.has(`${t.namespace}.${t.name}`));
  if (missing.length === 0) return [];
  if (!manage) {
    throw new TributaryError('config', {
      userMessage: `Publication "${name}" lacks table(s) ${missing
        .map((t) => `${t.namespace}.${t.name}`)
        .join(', ')}. Add them (ALTER PUBLICATION … ADD TABLE …) or set manage_publication: true.`,
    });
  }
  await assertReplicaIdentity(client, name, missing);
  await client.query(`ALTER PUBLICATION ${ident(name)} ADD TABLE ${missing.map((t) => qualified(t.namespace, t.name)).join(', ')}`);
  return missing;
}

/**
 * Refuses to publish tables whose UPDATEs and DELETEs PostgreSQL would then reject: a table in
 * a publication that publishes updates and deletes (as the managed one does) needs a replica
 * identity, or every UPDATE and DELETE on it fails with "cannot update table … because it does
 * not have a replica identity and publishes updates" — the application's writes, not the
 * sync, would break. That is a table (or a partition of a partitioned table: each is checked
 * on its own) with `REPLICA IDENTITY NOTHING`, with `DEFAULT` and no primary key, or with
 * `USING INDEX` whose index is gone. Checked right before the publication is created or
 * extended, on the catalog as it is then (the configured catalog may be older).
 */
async function assertReplicaIdentity(client: pg.Client, publication: string, tables: readonly TableInfo[]): Promise<void> {
  if (tables.length === 0) return;
  const lacking = await client.query<{ name: string; identity: string }>(
    `WITH RECURSIVE tree(oid) AS (
       SELECT unnest($1::oid[])
       UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid
     )
     SELECT DISTINCT c.oid::regclass::text AS name, c.relreplident::text AS identity
       FROM tree JOIN pg_class c ON c.oid = tree.oid
      WHERE c.relkind = 'r'
        AND (c.relreplident = 'n'
          OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisprimary))
          OR (c.relreplident = 'i' AND NOT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisreplident)))
      ORDER BY 1`,
    [tables.map((t) => t.oid)],
  );
  if (lacking.rows.length === 0) return;
  const described = lacking.rows.map((r) => `${r.name} (${r.identity === 'n' ? 'REPLICA IDENTITY NOTHING' : r.identity === 'd' ? 'no primary key' : 'replica identity index missing'})`);
  throw new TributaryError('config', {
    userMessage: `Cannot stream ${described.join(', ')} by CDC: in publication "${publication}" every UPDATE and DELETE on ${
      lacking.rows.length === 1 ? 'it' : 'them'
    } would fail ("does not have a replica identity"). Give ${lacking.rows.length === 1 ? 'it' : 'each'} a replica identity (a primary key with ALTER TABLE … REPLICA IDENTITY DEFAULT, or ALTER TABLE … REPLICA IDENTITY FULL), or sync ${
      lacking.rows.length === 1 ? 'it' : 'them'
    } with sync_mode full_refresh.`,
  });
}

/**
 * `table` with only the columns pgoutput streams for it: generated columns are left out
 * before PostgreSQL 18 (and virtual ones, or stored ones the publication does not publish,
 * from 18 on), as are columns outside a publication's column list (15+). The CDC snapshot
 * reads these columns only, so a snapshot row and the same row streamed later carry the
 * same columns: a column only the snapshot had would keep its snapshot value downstream
 * however the row changed. Key columns always stay (the snapshot resumes by them).
 */
export async function publishedColumns(client: pg.Client, publication: string, table: TableInfo): Promise<{ table: TableInfo; left: string[] }> {
  const version = await serverVersion(client);
  const left = new Set<string>();
  if (version >= 120_000 && version < GENERATED_COLUMNS_FROM) {
    const generated = await client.query<{ name: string }>(
      `SELECT attname AS name FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated <> ''`,
      [table.oid],
    );
    for (const row of generated.rows) left.add(row.name);
  }
  if (version >= 150_000) {
    const published = await client.query<{ name: string }>(
      'SELECT unnest(attnames) AS name FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3',
      [publication, table.namespace, table.name],
    );
    const names = new Set(published.rows.map((row) => row.name));
    if (names.size > 0) for (const column of table.columns) if (!names.has(column.name)) left.add(column.name);
  }
  for (const key of [...table.primaryKey, ...table.identityIndex]) left.delete(key);
  if (left.size === 0) return { table, left: [] };
  return { table: { ...table, columns: table.columns.filter((c) => !left.has(c.name)) }, left: [...left] };
}

/**
 * The kinds of change the publication leaves out (`publish = '…'` without them): `insert`,
 * `update`, `delete`, `truncate` (11+). A publication this connector creates publishes all
 * four; one created by someone else may not, and those changes then never reach the stream.
 */
export async function unpublishedActions(client: pg.Client, publication: string): Promise<string[]> {
  const truncate = (await serverVersion(client)) >= 110_000 ? 'pubtruncate' : 'true';
  const result = await client.query<{ insert: string; update: string; delete: string; truncate: string }>(
    `SELECT pubinsert::text AS insert, pubupdate::text AS update, pubdelete::text AS delete, ${truncate}::text AS truncate FROM pg_publication WHERE pubname = $1`,
    [publication],
  );
  const row = result.rows[0];
  if (!row) return [];
  return (['insert', 'update', 'delete', 'truncate'] as const).filter((action) => row[action] !== 'true');
}

/**
 * The publication's row filter of `table` (15+: `FOR TABLE t WHERE (…)`), as SQL over its
 * columns, or undefined. Changes of rows outside it are never streamed (an update keeping a
 * row outside, its delete), so the CDC snapshot reads only rows inside it, as PostgreSQL's own
 * table synchronization does: a snapshot row outside it would stay downstream unchanged.
 */
export async function publishedRowFilter(client: pg.Client, publication: string, table: TableInfo): Promise<string | undefined> {
  if ((await serverVersion(client)) < 150_000) return undefined;
  const result = await client.query<{ rowfilter: string | null }>(
    'SELECT rowfilter FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3',
    [publication, table.namespace, table.name],
  );
  return result.rows[0]?.rowfilter ?? undefined;
}

/**
 * Confirms `lsn` on a slot no stream is attached to (the sync's last checkpoints are acked
 * after its read ended). Never moves the slot backwards; waits briefly for the walsender of
 * the ended stream to release the slot.
 */
export async function advanceSlot(config: PostgresConfig, slot: string, lsn: Lsn): Promise<void> {
  const client = await connect(config);
  try {
    for (let attempt = 0; ; attempt++) {
      const info = await slotInfo(client, slot);
      if (!info || (info.confirmedFlush !== undefined && info.confirmedFlush >= lsn)) return;
      if (!info.active) {
        try {
          await client.query('SELECT pg_replication_slot_advance($1, $2::pg_lsn)', [slot, formatLsnText(lsn)]);
          return;
        } catch (error) {
          // Lost a race with a new stream taking the slot: retry below.
          if (attempt >= 50) throw error;
        }
      } else if (attempt >= 50) {
        throw new TributaryError('transient', { userMessage: `Replication slot "${slot}" stayed in use; its position will be confirmed by the next sync.` });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

function formatLsnText(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16)}/${(lsn & 0xffffffffn).toString(16)}`;
}
