/** Log sequence numbers: 64-bit WAL positions, printed `X/Y` (hex halves) like PostgreSQL does. */
export type Lsn = bigint;

export function parseLsn(text: string): Lsn {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!match) throw new Error(`not an LSN: ${text}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Microseconds since 2000-01-01, the PostgreSQL epoch. */
const PG_EPOCH_MS = 946_684_800_000;

export function pgTimeToIso(micros: bigint): string {
  const ms = Number(micros / 1000n);
  const iso = new Date(PG_EPOCH_MS + ms).toISOString(); // …sss Z
  const extra = Number(((micros % 1000n) + 1000n) % 1000n);
  return `${iso.slice(0, 23)}${String(extra).padStart(3, '0')}Z`;
}

export function nowPgMicros(): bigint {
  return BigInt(Date.now() - PG_EPOCH_MS) * 1000n;
}
