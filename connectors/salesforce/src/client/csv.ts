/**
 * RFC 4180 CSV as Bulk API 2.0 writes it (comma delimiter, `"` quoting, LF or CRLF). jsforce's
 * own parser is not used on purpose: it treats every delimiter Bulk API 2.0 supports
 * (`,` `;` `|` `^` `` ` `` tab) as a delimiter at once, which splits multi-select picklist
 * values (`Gold;Silver`).
 */

/** Rows after the header, one object per row keyed by the header, produced lazily. */
export function* csvRecords(text: string): Generator<Record<string, string>> {
  let header: string[] | undefined;
  for (const cells of csvRows(text)) {
    if (header === undefined) {
      header = cells;
      continue;
    }
    const record: Record<string, string> = {};
    for (let c = 0; c < header.length; c++) record[header[c]!] = cells[c] ?? '';
    yield record;
  }
}

/** How many data rows (after the header) the text holds: record ends outside quotes. */
export function countCsvRecords(text: string): number {
  let rows = 0;
  let quoted = false;
  let pending = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 34 /* " */) {
      quoted = !quoted;
      pending = true;
    } else if (!quoted && (ch === 10 || ch === 13)) {
      if (ch === 13 && text.charCodeAt(i + 1) === 10) i++;
      rows++;
      pending = false;
    } else pending = true;
  }
  if (pending) rows++;
  return Math.max(0, rows - 1);
}

function* csvRows(text: string): Generator<string[]> {
  let row: string[] = [];
  let value = '';
  let quoted = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text.charCodeAt(i);
    if (quoted) {
      if (ch === 34 /* " */) {
        if (text.charCodeAt(i + 1) === 34) {
          value += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      const next = text.indexOf('"', i);
      const stop = next < 0 ? n : next;
      value += text.slice(i, stop);
      i = stop;
      continue;
    }
    if (ch === 34) {
      quoted = true;
      i++;
    } else if (ch === 44 /* , */) {
      row.push(value);
      value = '';
      i++;
    } else if (ch === 10 || ch === 13) {
      row.push(value);
      value = '';
      yield row;
      row = [];
      i += ch === 13 && text.charCodeAt(i + 1) === 10 ? 2 : 1;
    } else {
      // A plain run up to the next special character.
      let j = i + 1;
      while (j < n) {
        const c = text.charCodeAt(j);
        if (c === 44 || c === 10 || c === 13 || c === 34) break;
        j++;
      }
      value += text.slice(i, j);
      i = j;
    }
  }
  if (value !== '' || row.length > 0) {
    row.push(value);
    yield row;
  }
}
