/**
 * The source that `tributary new source` generates, imported from a package generated into a
 * scratch directory of this repository (so that `@tributary/core` resolves to this checkout).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  TributaryError,
  configureCatalog,
  createConnectorContext,
  expandRecordPages,
  parseConfig,
  type Source,
} from '../src/index.js';
import { createConnectorPackage } from '../src/scaffold/create-connector.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const scratch: string[] = [];
afterAll(async () => {
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Generates the source package, lets `edit` change its src/index.ts (as its author would), imports it. */
async function generatedSource(edit: (text: string) => string = (text) => text): Promise<Source> {
  const root = await mkdtemp(join(REPO, 'zz-scaffold-source-'));
  scratch.push(root);
  const created = await createConnectorPackage({ kind: 'source', name: 'acme', directory: join(root, 'acme') });
  const file = join(created.directory, 'src', 'index.ts');
  const original = await readFile(file, 'utf8');
  await writeFile(file, edit(original));
  const module = (await import(pathToFileURL(file).href)) as { default: Source };
  return module.default;
}

describe('scaffold: generated source', () => {
  it('refuses an API that ignores the position (the same page again) instead of reading it forever', async () => {
    // The stand-in swapped for an API that never applies the "after" filter, as a misspelt
    // query parameter would do: every request answers the first page.
    const ignoring = (text: string): string => {
      const filter = 'if (after !== undefined && compare(contactAt(mid), after) <= 0) low = mid + 1;';
      expect(text).toContain(filter);
      return text.replace(filter, 'if (after === null) low = mid + 1;');
    };
    const source = await generatedSource(ignoring);
    const config = parseConfig(source.spec.connectionSpecification, { api_key: 'demo-key', record_count: 20, page_size: 5 });
    const catalog = configureCatalog(await source.discover(createConnectorContext(), config), [{ name: 'contacts', sync_mode: 'incremental' }], ['append_dedup']);
    // Guard for the test itself: without the check the read would never end on its own.
    const controller = new AbortController();
    const ctx = createConnectorContext({ signal: controller.signal });
    let records = 0;
    const error = await (async () => {
      for await (const message of expandRecordPages(source.read(ctx, config, catalog, { streams: {} }))) {
        if (message.kind === 'record' && ++records === 100) controller.abort();
      }
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(TributaryError.is(error, 'fatal'), String(error)).toBe(true);
    expect(records).toBe(5);
  });

  it('reads a full refresh to the end when the API answers fewer records per page than asked', async () => {
    // The stand-in swapped for an API whose own maximum page size (3) is below page_size.
    const capped = (text: string): string => {
      const slice = 'for (let i = low; i < Math.min(low + limit, count); i++)';
      expect(text).toContain(slice);
      return text.replace(slice, 'for (let i = low; i < Math.min(low + Math.min(limit, 3), count); i++)');
    };
    const source = await generatedSource(capped);
    const config = parseConfig(source.spec.connectionSpecification, { api_key: 'demo-key', record_count: 20, page_size: 5 });
    const catalog = configureCatalog(await source.discover(createConnectorContext(), config), [{ name: 'contacts', sync_mode: 'full_refresh' }], ['overwrite']);
    const ids: unknown[] = [];
    const states: unknown[] = [];
    for await (const message of expandRecordPages(source.read(createConnectorContext(), config, catalog, { streams: {} }))) {
      if (message.kind === 'record') ids.push(message.data.id);
      if (message.kind === 'checkpoint') states.push(message.state);
    }
    expect(ids).toEqual(Array.from({ length: 20 }, (_, i) => `ct_${String(i + 1).padStart(7, '0')}`));
    expect(states.at(-1)).toEqual({});
  });
});
