import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { TributaryError, defineWriter, type ConfigOf, type WriteRequest, type WriteResult, type WriterSession } from '@tributary/core';
import { applyRequest } from './apply.js';
import { CRM_OBJECTS, isCrmObject, writableObjects, type CrmObject } from './objects.js';
import { cloneTable, loadTable, saveTable, tablePath, withFileLock } from './store.js';

export { CRM_OBJECTS, LIFECYCLE_STAGES, type CrmObject, type CrmObjectName } from './objects.js';
export type { Row } from './store.js';

/** The Airbyte `connectionSpecification` of the sample CRM writer. */
export const sampleWriterConfigSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Sample CRM writer',
  type: 'object',
  additionalProperties: false,
  required: ['directory'],
  properties: {
    directory: {
      type: 'string',
      title: 'Directory',
      description: 'Where the CRM keeps its data: one JSON file per object (contacts.json, companies.json). Created on first write.',
      minLength: 1,
      order: 0,
    },
    api_key: {
      type: 'string',
      title: 'API key',
      description: 'Stand-in credential. Any value is accepted except "invalid", which the CRM refuses (to exercise auth errors).',
      airbyte_secret: true,
      order: 1,
    },
    fail_emails_matching: {
      type: 'string',
      title: 'Fail emails matching',
      description: 'A regular expression; contacts whose email matches are refused with a per-record failure (for tests).',
      order: 2,
    },
  },
} as const;

export type SampleWriterConfig = ConfigOf<typeof sampleWriterConfigSchema>;

const REFUSED_API_KEY = 'invalid';

/** Also the CRM's answer to every request with that key; the message never contains the key. */
function assertApiKey(config: SampleWriterConfig): void {
  if (config.api_key === REFUSED_API_KEY) {
    throw new TributaryError('auth', { userMessage: 'The sample CRM refused the configured api_key. Set api_key to another value, or remove it.' });
  }
}

function failPatternOf(config: SampleWriterConfig): RegExp | undefined {
  if (config.fail_emails_matching === undefined) return undefined;
  try {
    return new RegExp(config.fail_emails_matching);
  } catch (error) {
    throw new TributaryError('config', { userMessage: 'config.fail_emails_matching is not a valid regular expression', cause: error });
  }
}

/** The directory must be a writable directory, or creatable under a writable ancestor. */
async function checkDirectory(directory: string): Promise<void> {
  let path = resolve(directory);
  for (;;) {
    try {
      const s = await stat(path);
      if (!s.isDirectory()) {
        throw new TributaryError('config', { userMessage: `config.directory: ${path} exists and is not a directory` });
      }
      break;
    } catch (error) {
      if (TributaryError.is(error)) throw error;
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(path) === path) {
        throw new TributaryError('config', { userMessage: `config.directory: cannot inspect ${path}`, cause: error });
      }
      path = dirname(path);
    }
  }
  try {
    await access(path, constants.W_OK | constants.X_OK);
  } catch (error) {
    throw new TributaryError('config', { userMessage: `config.directory: ${path} is not writable`, cause: error });
  }
}

function objectOf(request: { object: string; idProperty: string }): CrmObject {
  if (!isCrmObject(request.object)) {
    throw new TributaryError('config', { userMessage: `The sample CRM has no object "${request.object}" (objects: ${Object.keys(CRM_OBJECTS).join(', ')})` });
  }
  const object = CRM_OBJECTS[request.object];
  if (request.idProperty !== object.idProperty) {
    throw new TributaryError('config', { userMessage: `${object.name} can only be matched on ${object.idProperty}, not ${request.idProperty}` });
  }
  return object;
}

const MAX_BATCH_SIZE = 100;
const WRITE_MODES: ReadonlySet<string> = new Set(['insert', 'update', 'upsert', 'delete']);

/**
 * A reverse-ETL writer into a small local "CRM" kept on disk: `contacts` (matched on email)
 * and `companies` (matched on domain). Each request is applied record by record (partial
 * success) and then persisted atomically; see apply.ts for the per-mode semantics and
 * store.ts for durability and locking.
 */
export const sampleWriter = defineWriter({
  name: 'sample-crm',
  version: '0.1.0',
  spec: { connectionSpecification: sampleWriterConfigSchema },
  rateLimit: { requests: 20, perMs: 1000, concurrency: 2 },
  maxBatchSize: MAX_BATCH_SIZE,

  async check(_ctx, config) {
    assertApiKey(config);
    failPatternOf(config);
    await checkDirectory(config.directory);
  },

  async discover(_ctx, config) {
    assertApiKey(config);
    return writableObjects();
  },

  async open(_ctx, config): Promise<WriterSession> {
    assertApiKey(config);
    const failEmails = failPatternOf(config);
    const directory = resolve(config.directory);
    // Created by the first write that changes something, not here: a dry run (or a run
    // with nothing to change) leaves the file system as it found it.
    let created: Promise<void> | undefined;
    const createDirectory = (): Promise<void> =>
      (created ??= mkdir(directory, { recursive: true }).then(
        () => undefined,
        (error: unknown) => {
          created = undefined;
          throw new TributaryError('config', { userMessage: `config.directory: cannot create ${directory}`, cause: error });
        },
      ));
    const inFlight = new Set<Promise<unknown>>();
    let closed = false;

    function track<T>(operation: Promise<T>): Promise<T> {
      inFlight.add(operation);
      const forget = (): void => {
        inFlight.delete(operation);
      };
      operation.then(forget, forget);
      return operation;
    }

    function assertOpen(): void {
      if (closed) throw new TributaryError('fatal', { userMessage: 'The sample CRM writer session is closed' });
    }

    async function write(request: WriteRequest): Promise<WriteResult[]> {
      assertOpen();
      const object = objectOf(request);
      if (!WRITE_MODES.has(request.mode)) {
        throw new TributaryError('config', { userMessage: `The sample CRM does not support write mode ${String(request.mode)}` });
      }
      if (request.records.length > MAX_BATCH_SIZE) {
        throw new TributaryError('fatal', { userMessage: `A request to the sample CRM holds at most ${MAX_BATCH_SIZE} records (got ${request.records.length})` });
      }
      const path = tablePath(directory, object.name);
      return withFileLock(path, async () => {
        const current = await loadTable(path, object.name, object.idProperty);
        // Changes go to a copy that replaces the cached table only once it is on disk.
        const next = cloneTable(current);
        const results = applyRequest(next, object, request, { failEmails, now: new Date().toISOString() });
        const changed = results.some((r) => r.status === 'created' || r.status === 'updated' || r.status === 'deleted');
        if (!request.dryRun && changed) {
          await createDirectory();
          await saveTable(path, next);
        }
        return results;
      });
    }

    async function* listKeys(objectName: string, idProperty: string): AsyncIterable<string> {
      assertOpen();
      const object = objectOf({ object: objectName, idProperty });
      const path = tablePath(directory, object.name);
      const keys = await track(withFileLock(path, async () => [...(await loadTable(path, object.name, object.idProperty)).rows.keys()]));
      yield* keys;
    }

    return {
      write: (request) => track(write(request)),
      listKeys,
      async close() {
        closed = true;
        await Promise.allSettled([...inFlight]);
      },
    };
  },
});

export default sampleWriter;
