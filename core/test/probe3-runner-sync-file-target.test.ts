/**
 * A sync file needs exactly one of `destination:` and `writer:`. The schema says so with a
 * `oneOf`, whose own error reached the user as "sync must match exactly one schema in oneOf"
 * — the whole message for a file with both, and beside "sync must be object" for an empty
 * file. The message now says what is wrong in the user's terms.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSyncFile } from '../src/cli/sync-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-probe3-sync-target-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function problemsOf(text: string): Promise<string> {
  const path = join(dir, 'sync.yaml');
  await writeFile(path, text);
  const error = await readSyncFile(path).then(
    () => undefined,
    (e: unknown) => e as { kind: string; userMessage: string },
  );
  expect(error?.kind).toBe('config');
  return error!.userMessage;
}

const writer = 'writer: { connector: sample-crm, object: contacts, id_property: email }';

describe('sync file: destination or writer', () => {
  it.each([
    ['both destination and writer', `source: { connector: sample }\ndestination: { connector: local }\n${writer}\n`, 'sync has both destination: and writer:; a sync writes into one of them (writer: for reverse ETL)'],
    ['neither', 'source: { connector: sample }\n', 'sync needs destination: (or writer: for reverse ETL)'],
    ['an empty file', '', 'the file must be a YAML mapping with source: and destination: (or writer: for reverse ETL), not empty'],
    ['a list', '- source\n- destination\n', 'the file must be a YAML mapping with source: and destination: (or writer: for reverse ETL), not a list'],
  ])('%s: says so, without the schema\'s oneOf wording', async (_what, text, expected) => {
    const message = await problemsOf(text);
    expect(message).toContain(expected);
    expect(message).not.toMatch(/oneOf|must be object/);
  });

  it('other problems are still listed by key, with the missing target', async () => {
    const message = await problemsOf('source: { connector: sample, confg: {} }\nbatching: { max_records: "10" }\n');
    expect(message.split('\n').slice(1)).toEqual([
      '  - sync.source.confg is not a known property',
      '  - sync.batching.max_records must be integer',
      '  - sync needs destination: (or writer: for reverse ETL)',
    ]);
  });
});
