import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parseConfig } from '../config/schema.js';
import { collectSecrets, createRedactor, type Redactor } from '../config/secrets.js';
import type { ConnectorContext } from '../connector/context.js';
import { createConnectorContext } from '../connector/create-context.js';
import type { Destination } from '../connector/destination.js';
import { expandRecordPages, type Source, type SourceMessage } from '../connector/source.js';
import { describeStreams, emptyState, fromStateMessages, toStateMessages, type SyncState } from '../connector/state.js';
import { renderSpecTable, updateReadmeSection } from '../docs/spec-table.js';
import { openAppendLog } from '../fs/append-log.js';
import { writeFileAtomic } from '../fs/atomic-file.js';
import { createMetricsRegistry } from '../metrics/metrics.js';
import { TributaryError, toTributaryError } from '../errors.js';
import { createLogger } from '../logging/logger.js';
import type { AirbyteMessage, AirbyteStateMessage, ConfiguredAirbyteCatalog, ConnectorSpecification } from '../protocol/messages.js';
import { streamKey } from '../protocol/messages.js';
import { toAirbyteMessage } from '../protocol/wire.js';
import { runPipeline } from '../runtime/pipeline.js';
import type { WriteIntent } from '../runtime/reverse-etl.js';
import { runSync, toDestinationStreams } from '../runtime/sync.js';
import { dryRunStateStore, writerDestination } from '../runtime/writer-destination.js';
import { checkStateMessages } from '../state/codec.js';
import { openStateStore } from '../state/open-store.js';
import { describeMaxStringLength } from '../util/json-text.js';
import { textLines, type LineTooLong } from '../util/text-lines.js';
import type { StateStore } from '../state/store.js';
import { createConnectorPackage, describeCreated, isConnectorKind } from '../scaffold/create-connector.js';
import { listInstalledCommands, listInstalledConnectors, loadCommand, loadConnector } from './connector-registry.js';
import { AirbyteWriter, airbyteEventPrinter, createProgressDisplay } from './output.js';
import { configureCatalog, readSyncFile, type SyncFile } from './sync-file.js';
import { checkCatalogFile, checkReadCatalogFile } from './configured-catalog.js';

const USAGE = `tributary — move CRM data reliably

Usage:
  tributary sync <file.yaml> [--json] [--metrics-file <path>]   run a sync (source → destination or writer, resumable);
                                                  --metrics-file: connector gauges in Prometheus text format, rewritten every 5 s
  tributary spec <connector> [--kind source|destination|writer]
  tributary check <connector> --config <file.json> [--kind ...]
  tributary discover <source> --config <file.json>
  tributary read <source> --config <file.json> [--catalog <file.json>] [--state <file.json>]
  tributary write <destination> --config <file.json> --catalog <file.json>   (Airbyte messages on stdin)
  tributary state show|set|reset <connection> [--store <url> | --sync <file.yaml>] [--file <state.json>] [--stream <name>]
  tributary connectors                            list installed connector packages
  tributary new source|destination|writer <name> [--dir <path>]   scaffold a connector package (default dir ./<name>)
  tributary docs <connector> [--kind ...] [--check <README.md> | --write <README.md>] [--section <name>]   config parameter table (Markdown)

spec/check/discover/read/write speak Airbyte protocol JSON lines on stdout.
Secrets: write \${ENV_NAME} in a sync file and set the variable.`;

/** Exit codes: 0 ok, 1 sync or connector failure, 2 usage/config error, 130/143 interrupted. */
export async function main(argv: string[]): Promise<number> {
  const out = new AirbyteWriter(process.stdout);
  let redact: Redactor = (t) => t;
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'sync':
        return await syncCommand(rest, (r) => {
          redact = r;
          out.setRedactor(r);
        });
      case 'spec':
      case 'check':
      case 'discover':
      case 'read':
        return await connectorCommand(command, rest, out, (r) => {
          redact = r;
          out.setRedactor(r);
        });
      case 'write':
        return await writeCommand(rest, out, (r) => {
          redact = r;
          out.setRedactor(r);
        });
      case 'state':
        return await stateCommand(rest);
      case 'connectors':
        return await connectorsCommand();
      case 'docs':
        return await docsCommand(rest);
      case 'new':
        return await newCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write((await usageWithPlugins()) + '\n');
        return command === undefined ? 2 : 0;
      default: {
        const plugin = (await listInstalledCommands()).find((c) => c.name === command);
        if (plugin) return await (await loadCommand(plugin))(rest);
        throw new TributaryError('config', { userMessage: `Unknown command "${command}"\n\n${await usageWithPlugins()}` });
      }
    }
  } catch (caught) {
    const error = toTributaryError(caught);
    // Machine readers of stdout get the failure as an Airbyte TRACE error too.
    const protocolCommand =
      command !== undefined &&
      (['spec', 'check', 'discover', 'read', 'write'].includes(command) || (command === 'sync' && (rest.includes('--json') || !process.stderr.isTTY)));
    if (protocolCommand) out.error(error);
    process.stderr.write(redact(`error: ${error.userMessage}`) + '\n');
    if (error.internalMessage && (process.env.TRIBUTARY_DEBUG || error.kind === 'fatal')) {
      process.stderr.write(redact(`  detail: ${error.internalMessage}`) + '\n');
    }
    if (process.env.TRIBUTARY_DEBUG) process.stderr.write(redact(String((error.cause as Error | undefined)?.stack ?? error.stack)) + '\n');
    return error.kind === 'config' || error.kind === 'auth' ? 2 : 1;
  }
}

/** The usage text plus the commands installed packages contribute (e.g. `lake`). */
async function usageWithPlugins(): Promise<string> {
  const plugins = await listInstalledCommands().catch(() => []);
  if (plugins.length === 0) return USAGE;
  const width = Math.max(...plugins.map((p) => p.name.length));
  const lines = plugins.map((p) => `  tributary ${p.name.padEnd(width)} …   ${p.description} (from ${p.packageName})`);
  return `${USAGE}\n\nCommands from installed packages:\n${lines.join('\n')}`;
}

function options(args: string[]) {
  return usageErrors(() =>
    parseArgs({
      args,
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        catalog: { type: 'string' },
        state: { type: 'string' },
        kind: { type: 'string' },
        json: { type: 'boolean' },
        'metrics-file': { type: 'string' },
      },
    }),
  );
}

function usageErrors<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new TributaryError('config', { userMessage: `${(error as Error).message}\n\n${USAGE}` });
  }
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new TributaryError('config', { userMessage: `Cannot read ${what} ${path}: ${(error as Error).message}` });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new TributaryError('config', { userMessage: `${what} ${path} is not valid JSON: ${(error as Error).message}` });
  }
}

function specMessage(connector: Source | Destination | { spec: { connectionSpecification: object; documentationUrl?: string } }): ConnectorSpecification {
  const spec: ConnectorSpecification = {
    connectionSpecification: connector.spec.connectionSpecification as Record<string, unknown>,
    protocol_version: '0.5.2',
  };
  if (connector.spec.documentationUrl) spec.documentationUrl = connector.spec.documentationUrl;
  if ('kind' in connector && connector.kind === 'source') spec.supportsIncremental = connector.spec.supportsIncremental ?? true;
  if ('kind' in connector && connector.kind === 'destination') spec.supported_destination_sync_modes = connector.spec.supportedDestinationSyncModes;
  return spec;
}

async function connectorCommand(
  command: 'spec' | 'check' | 'discover' | 'read',
  args: string[],
  out: AirbyteWriter,
  setRedactor: (r: Redactor) => void,
): Promise<number> {
  const { values, positionals } = options(args);
  const reference = positionals[0];
  if (!reference) throw new TributaryError('config', { userMessage: `Usage: tributary ${command} <connector> --config <file.json>` });
  const kind = (values.kind ?? (command === 'discover' || command === 'read' ? 'source' : undefined)) as
    | 'source'
    | 'destination'
    | 'writer'
    | undefined;
  const connector = kind ? await loadConnector(reference, kind as 'source') : await loadConnector(reference);
  if (command === 'spec') {
    out.emit({ type: 'SPEC', spec: specMessage(connector) });
    return 0;
  }
  if (!values.config) throw new TributaryError('config', { userMessage: `tributary ${command} needs --config <file.json>` });
  const rawConfig = await readJson(values.config, 'config');
  const schema = connector.spec.connectionSpecification;
  setRedactor(createRedactor(collectSecrets(schema, rawConfig)));
  const logger = createLogger((level, message) => out.log(level, message));
  // The connector's declared policies, as in `tributary sync`: its `retry` is the default of
  // `ctx.call` (and so of its HTTP client), whatever command runs it.
  const ctx = createConnectorContext({
    logger,
    ...(connector.rateLimit ? { rateLimit: connector.rateLimit } : {}),
    ...(connector.retry ? { retry: connector.retry } : {}),
  });

  if (command === 'check') {
    try {
      const config = parseConfig(schema, rawConfig);
      await connector.check(ctx, config);
      out.emit({ type: 'CONNECTION_STATUS', connectionStatus: { status: 'SUCCEEDED' } });
      return 0;
    } catch (caught) {
      const error = toTributaryError(caught);
      if (error.kind !== 'config' && error.kind !== 'auth') throw error;
      out.emit({ type: 'CONNECTION_STATUS', connectionStatus: { status: 'FAILED', message: error.userMessage } });
      return 1;
    }
  }
  if (connector.kind !== 'source') throw new TributaryError('config', { userMessage: `"${reference}" is not a source` });
  const config = parseConfig(schema, rawConfig);
  const catalog = await connector.discover(ctx, config);
  if (command === 'discover') {
    out.emit({ type: 'CATALOG', catalog });
    return 0;
  }
  const configured = values.catalog
    ? checkReadCatalogFile(await readJson(values.catalog, 'catalog'), values.catalog, catalog)
    : configureCatalog(catalog, undefined, ['append', 'append_dedup', 'overwrite']);
  const state = values.state ? fromStateMessages(asStateMessages(await readJson(values.state, 'state'), values.state)) : emptyState();
  // The output's reader went away: the read stopped, as a producer killed by SIGPIPE does (128 + 13).
  return (await readToStdout(connector, ctx, config, configured, state, out)) ? 0 : EXIT_OUTPUT_CLOSED;
}

/** Exit code of a read whose output's reader went away: a process killed by SIGPIPE (128 + 13) exits so. */
const EXIT_OUTPUT_CLOSED = 141;

/** A state file's STATE messages (one message or an array), checked as the state stores check a stored state. */
function asStateMessages(value: unknown, path: string): AirbyteStateMessage[] {
  return checkStateMessages(Array.isArray(value) ? value : [value], `State file ${path}`);
}

/**
 * `read`: the source on its own. Every message is printed as the Airbyte message it maps to;
 * STATE messages carry the number of records since the stream's previous checkpoint. The
 * source is read no faster than stdout's reader takes the output (bounded memory), and
 * stops (the source closed) once that reader went away: false then, else true.
 */
async function readToStdout(
  source: Source,
  ctx: ConnectorContext,
  config: Record<string, unknown>,
  catalog: ConfiguredAirbyteCatalog,
  initial: SyncState,
  out: AirbyteWriter,
): Promise<boolean> {
  const counts = new Map<string, number>();
  for await (const message of expandRecordPages(source.read(ctx, config, catalog, structuredClone(initial)))) {
    if (out.closed) return false;
    const wire = toAirbyteMessage(message, Date.now());
    if (message.kind === 'record') {
      const key = streamKey(message.stream, message.namespace);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    } else if (wire.type === 'STATE') {
      const keys = message.kind === 'checkpoint' ? [streamKey(message.stream, message.namespace)] : [...counts.keys()];
      const recordCount = keys.reduce((n, k) => n + (counts.get(k) ?? 0), 0);
      for (const k of keys) counts.set(k, 0);
      wire.state.sourceStats = { recordCount };
    }
    out.emit(wire);
    if (out.backlogged) await out.drained();
  }
  return !out.closed;
}

/** `write`: Airbyte RECORD/STATE messages on stdin → destination; STATE echoed once committed. */
async function writeCommand(args: string[], out: AirbyteWriter, setRedactor: (r: Redactor) => void): Promise<number> {
  const { values, positionals } = options(args);
  const reference = positionals[0];
  if (!reference || !values.config || !values.catalog) {
    throw new TributaryError('config', { userMessage: 'Usage: tributary write <destination> --config <file.json> --catalog <file.json> < messages.jsonl' });
  }
  const destination = await loadConnector(reference, 'destination');
  const rawConfig = await readJson(values.config, 'config');
  setRedactor(createRedactor(collectSecrets(destination.spec.connectionSpecification, rawConfig)));
  const config = parseConfig(destination.spec.connectionSpecification, rawConfig);
  // Checked as `tributary sync` checks its catalog, before the destination is opened.
  const catalog = checkCatalogFile(await readJson(values.catalog, 'catalog'), values.catalog, destination);
  // The destination's declared rate limit and retry policy apply to its context and to every
  // `write` and `commit` (`callDestination` below), as in `tributary sync`.
  const ctx = createConnectorContext({
    logger: createLogger((level, message) => out.log(level, message)),
    ...(destination.rateLimit ? { rateLimit: destination.rateLimit } : {}),
    ...(destination.retry ? { retry: destination.retry } : {}),
  });
  const streams = toDestinationStreams(catalog);
  const describe = describeStreams(streams);
  const session = await destination.open(ctx, config, streams);
  const result = await runPipeline({
    messages: stdinMessages(),
    session,
    streams,
    initialState: emptyState(),
    ...(destination.batching ? { batching: destination.batching } : {}),
    callDestination: (task) => ctx.call(task),
    // Echo each STATE once its records are committed, as Airbyte destinations do, naming
    // the streams as the catalog (and so the source's STATE messages) does.
    commitState: async ({ state, streams: advanced }) => out.state(state, advanced, describe),
  });
  await session.close({ completed: result.outcome === 'completed' });
  if (result.error) throw result.error;
  return 0;
}

async function* stdinMessages(): AsyncGenerator<SourceMessage> {
  const lines = textLines(process.stdin as AsyncIterable<Buffer>, stdinLineTooLong);
  let n = 0;
  for await (const line of lines) {
    n++;
    if (!line.trim()) continue;
    let message: AirbyteMessage;
    try {
      message = JSON.parse(line) as AirbyteMessage;
    } catch {
      throw new TributaryError('config', { userMessage: `stdin line ${n} is not a JSON Airbyte message` });
    }
    // Checked as far as the runtime reads them (a JSON object; a RECORD's `record` naming its
    // stream): anything else failed as "The sync failed: Cannot read properties of …".
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      throw new TributaryError('config', { userMessage: `stdin line ${n} is not a JSON Airbyte message (not a JSON object)` });
    }
    if (message.type === 'RECORD') {
      const r = message.record;
      if (!isRecordShaped(r)) {
        throw new TributaryError('config', { userMessage: `stdin line ${n} is a RECORD without a "record" object naming its "stream" (a string)` });
      }
      yield r.namespace ? { kind: 'record', stream: r.stream, namespace: r.namespace, data: r.data } : { kind: 'record', stream: r.stream, data: r.data };
    } else if (message.type === 'STATE') {
      // A STATE the destination is to echo once committed: checked as a stored state is, so
      // that a malformed one (or a LEGACY one) is a config error naming its line.
      const [s] = checkStateMessages([message.state], `stdin line ${n}`) as [AirbyteStateMessage];
      if (s.type === 'STREAM') {
        const d = s.stream.stream_descriptor;
        yield { kind: 'checkpoint', stream: d.name, ...(d.namespace ? { namespace: d.namespace } : {}), state: s.stream.stream_state ?? {} };
      } else {
        yield {
          kind: 'global-checkpoint',
          shared: s.global.shared_state ?? {},
          streams: s.global.stream_states.map((x) => ({
            stream: x.stream_descriptor.name,
            ...(x.stream_descriptor.namespace ? { namespace: x.stream_descriptor.namespace } : {}),
            state: x.stream_state ?? {},
          })),
        };
      }
    }
  }
}

/** Whether a RECORD's `record` is an object naming its stream (and namespace, if any) with strings. */
function isRecordShaped(record: unknown): boolean {
  if (typeof record !== 'object' || record === null) return false;
  const { stream, namespace } = record as { stream?: unknown; namespace?: unknown };
  return typeof stream === 'string' && (namespace === undefined || namespace === null || typeof namespace === 'string');
}

/**
 * A line of `tributary write`'s stdin longer than a string can be: a config error naming the
 * line and, when its head shows it, the stream of the RECORD on it.
 */
function stdinLineTooLong({ lineNumber, head }: LineTooLong): TributaryError {
  const stream = /"stream"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(head)?.[1];
  const what = stream === undefined ? '' : ` (a message of stream "${stream}")`;
  return new TributaryError('config', {
    userMessage: `stdin line ${lineNumber}${what} is longer than the longest string Node.js can hold (${describeMaxStringLength()}); it cannot be read`,
    ...(stream === undefined ? {} : { stream: { name: stream } }),
  });
}

/** The sync's destination: a destination connector, or a writer run as one (reverse ETL). */
async function openTarget(sync: SyncFile): Promise<{ destination: Destination; config: Record<string, unknown>; close(): Promise<void> }> {
  if (sync.destination) {
    const destination = await loadConnector(sync.destination.connector, 'destination');
    return { destination, config: sync.destination.config, close: async () => {} };
  }
  const selection = sync.writer!;
  const writer = await loadConnector(selection.connector, 'writer');
  // The audit trail, write-ahead: before each request is sent, one `sending` line per record,
  // fsynced (a crash then cannot hide a write the target applied); then one JSON line per
  // record result, appended, durable at each commit (before its checkpoint is saved).
  const audit = openAppendLog(selection.audit);
  const destination = writerDestination(writer, {
    object: selection.object,
    mode: selection.mode,
    idProperty: selection.idProperty,
    ...(selection.fields ? { fields: selection.fields } : {}),
    dryRun: selection.dryRun,
    audit: (entry) => audit.append(JSON.stringify(entry)),
    auditIntent: (intent) => {
      audit.append(intentLines(intent));
      return audit.flush();
    },
    flushAudit: () => audit.flush(),
  });
  return { destination, config: selection.config, close: () => audit.close() };
}

/**
 * The audit lines of a request about to be sent: one per record, shaped as its outcome line
 * will be (status `sending`, the request id in `request`). The fields common to the request
 * are encoded once, not per record.
 */
function intentLines(intent: WriteIntent): string {
  const head = `{"timestamp":${JSON.stringify(intent.timestamp)},"object":${JSON.stringify(intent.object)},"mode":${JSON.stringify(intent.mode)},"key":`;
  const tail = `,"status":"sending","dryRun":false,"request":${JSON.stringify(intent.request)}}\n`;
  let lines = '';
  for (const record of intent.records) lines += `${head}${JSON.stringify(record.key)},"idempotencyKey":${JSON.stringify(record.idempotencyKey)}${tail}`;
  return lines;
}

async function syncCommand(args: string[], setRedactor: (r: Redactor) => void): Promise<number> {
  const { values, positionals } = options(args);
  const file = positionals[0];
  if (!file) throw new TributaryError('config', { userMessage: 'Usage: tributary sync <file.yaml>' });
  const sync = await readSyncFile(file);
  const source = await loadConnector(sync.source.connector, 'source');
  const target = await openTarget(sync);
  const { destination } = target;
  const redact = createRedactor([
    ...collectSecrets(source.spec.connectionSpecification, sync.source.config),
    ...collectSecrets(destination.spec.connectionSpecification, target.config),
  ]);
  setRedactor(redact);
  const sourceConfig = parseConfig(source.spec.connectionSpecification, sync.source.config, 'source config');
  const discovered = await source.discover(
    createConnectorContext({ ...(source.rateLimit ? { rateLimit: source.rateLimit } : {}), ...(source.retry ? { retry: source.retry } : {}) }),
    sourceConfig,
  );
  const catalog = configureCatalog(discovered, sync.streams, destination.spec.supportedDestinationSyncModes);
  const openedStore = await openStateStore(sync.state);
  // A dry run writes nothing, so it must not move the connection's checkpoint either.
  const stateStore = sync.writer?.dryRun ? dryRunStateStore(openedStore) : openedStore;

  const interactive = process.stderr.isTTY === true && !values.json;
  const airbyte = new AirbyteWriter(process.stdout, redact);
  const progress = interactive ? createProgressDisplay(process.stderr, redact) : undefined;
  const onEvent = progress ? progress.onEvent : airbyteEventPrinter(airbyte, describeStreams(catalog.streams.map((c) => c.stream)));

  const controller = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      process.stderr.write(`\n${signal} again: exiting without waiting for the final commit\n`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    signalled = signal;
    process.stderr.write(`\n${signal}: stopping — flushing and committing what was read; ${signal} again to quit at once\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  if (interactive) {
    process.stderr.write(`sync ${sync.connection}: ${source.name} → ${destination.name}, ${catalog.streams.length} stream(s), state in ${stateStore.location}\n`);
  }
  const metricsFile = values['metrics-file'];
  const metrics = metricsFile !== undefined ? createMetricsRegistry() : undefined;
  const exportMetrics = (): Promise<void> =>
    metricsFile !== undefined && metrics ? writeFileAtomic(metricsFile, metrics.renderPrometheus()).catch(() => undefined) : Promise.resolve();
  // Rewritten while the sync runs, so a scraper sees current values (e.g. a slot's lag).
  const metricsTimer = metrics ? setInterval(() => void exportMetrics(), METRICS_EXPORT_INTERVAL_MS) : undefined;
  try {
    const result = await runSync({
      connection: sync.connection,
      source,
      sourceConfig: sync.source.config,
      destination,
      destinationConfig: target.config,
      catalog,
      stateStore,
      signal: controller.signal,
      ...(sync.batching ? { batching: sync.batching } : {}),
      ...(metrics ? { metrics } : {}),
      onEvent,
    });
    progress?.stop();
    const total = result.streams.reduce((n, s) => n + s.committed, 0);
    const rejected = result.streams.reduce((n, s) => n + s.rejected, 0);
    const summary = `${result.outcome}: ${total.toLocaleString('en-US')} records committed${rejected ? `, ${rejected} quarantined` : ''} in ${(result.durationMs / 1000).toFixed(1)} s`;
    if (result.error) {
      if (interactive) process.stderr.write(redact(`error: ${result.error.userMessage}`) + '\n');
      else airbyte.error(result.error);
    }
    if (interactive) process.stderr.write(summary + (result.outcome === 'interrupted' ? ' — run the same command again to resume' : '') + '\n');
    else airbyte.log(result.outcome === 'failed' ? 'ERROR' : 'INFO', summary);
    if (result.outcome === 'interrupted') return signalled === 'SIGTERM' ? 143 : 130;
    return result.outcome === 'completed' ? 0 : 1;
  } finally {
    if (metricsTimer) clearInterval(metricsTimer);
    await exportMetrics();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stateStore.close();
    await target.close();
  }
}

/** How often `tributary sync --metrics-file` rewrites the file. */
const METRICS_EXPORT_INTERVAL_MS = 5_000;

async function stateCommand(args: string[]): Promise<number> {
  const { values, positionals } = usageErrors(() =>
    parseArgs({
      args,
      allowPositionals: true,
      options: {
        store: { type: 'string' },
        sync: { type: 'string' },
        file: { type: 'string' },
        stream: { type: 'string', multiple: true },
      },
    }),
  );
  const [action, connectionArg] = positionals;
  if (!action || !['show', 'set', 'reset', 'list'].includes(action)) {
    throw new TributaryError('config', { userMessage: 'Usage: tributary state show|set|reset|list <connection> [--store <url> | --sync <file.yaml>]' });
  }
  const syncFile = values.sync ? await readSyncFile(values.sync) : undefined;
  const store = await openStateStore(values.store ?? syncFile?.state);
  const connection = connectionArg ?? syncFile?.connection;
  try {
    if (action === 'list') {
      for (const name of await store.list()) process.stdout.write(name + '\n');
      return 0;
    }
    if (!connection) throw new TributaryError('config', { userMessage: `tributary state ${action} needs a connection name (or --sync <file.yaml>)` });
    if (action === 'set' || action === 'reset') {
      // A running sync holds the whole state in memory and saves it at its next checkpoint,
      // which would silently undo this change: take the connection's sync lock, so that the
      // change is refused (config error, exit 2) while a sync of the connection runs.
      const lock = await store.lock?.(connection);
      try {
        return await changeState(action, connection, store, values);
      } finally {
        await lock?.release();
      }
    }
    const state = await store.load(connection);
    // No state is a normal condition (a new connection, or one just reset), not a failure:
    // it shows as the empty list of STATE messages, which `state set` and `read --state`
    // accept as "start from the beginning"; stderr says so, for a mistyped name.
    if (!state) process.stderr.write(`no state for connection "${connection}" in ${store.location}: the next sync starts from the beginning\n`);
    process.stdout.write(JSON.stringify(state ? toStateMessages(state) : [], null, 2) + '\n');
    return 0;
  } finally {
    await store.close();
  }
}

/** `state set` / `state reset`, with the connection's sync lock held. */
async function changeState(
  action: 'set' | 'reset',
  connection: string,
  store: StateStore,
  values: { file?: string | undefined; stream?: string[] | undefined },
): Promise<number> {
  if (action === 'set') {
    const path = values.file;
    let parsed: unknown;
    // A missing or unreadable --file is a config error, like every other input file.
    if (path) parsed = await readJson(path, 'state file');
    else {
      const text = await readStdin();
      try {
        parsed = JSON.parse(text);
      } catch (error) {
        throw new TributaryError('config', { userMessage: `State to set is not valid JSON: ${(error as Error).message}` });
      }
    }
    await store.save(connection, fromStateMessages(asStateMessages(parsed, path ?? 'stdin')));
    process.stderr.write(`state of "${connection}" set in ${store.location}\n`);
    return 0;
  }
  const streams = values.stream;
  // A mistyped connection or stream name resets nothing: say so instead of reporting a reset.
  // An unreadable state is reset whole all the same (its error message advises exactly that).
  let current: SyncState | undefined;
  let readable = true;
  try {
    current = await store.load(connection);
  } catch (error) {
    if (streams) throw error;
    readable = false;
  }
  if (readable && !current) {
    // Nothing to do is not a failure (a reset before a reload may run on a fresh store).
    process.stderr.write(`no state for connection "${connection}" in ${store.location}: nothing to reset\n`);
    return 0;
  }
  const unknown = current ? (streams ?? []).filter((s) => !Object.hasOwn(current.streams, s)) : [];
  if (current && unknown.length > 0) {
    const known = Object.keys(current.streams);
    throw new TributaryError('config', {
      userMessage:
        `Connection "${connection}" has no state for stream(s) ${unknown.join(', ')}; nothing was reset. ` +
        `Streams with state: ${known.length ? known.join(', ') : '(none)'} (a namespaced stream is named namespace.name)`,
    });
  }
  await store.reset(connection, streams);
  process.stderr.write(`state of "${connection}"${streams ? ` (streams ${streams.join(', ')})` : ''} reset in ${store.location}\n`);
  return 0;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * `docs`: the connector's config parameter table (docs/spec-table.ts). Prints it; `--write`
 * puts it between the README's spec-table markers; `--check` exits 1 when the README's
 * section differs from it (CI), without touching the file.
 */
async function docsCommand(args: string[]): Promise<number> {
  const { values, positionals } = usageErrors(() =>
    parseArgs({ args, allowPositionals: true, options: { kind: { type: 'string' }, check: { type: 'string' }, write: { type: 'string' }, section: { type: 'string' } } }),
  );
  const reference = positionals[0];
  const kind = values.kind;
  if (!reference || (values.check && values.write) || (kind && !['source', 'destination', 'writer'].includes(kind))) {
    throw new TributaryError('config', {
      userMessage: 'Usage: tributary docs <connector> [--kind source|destination|writer] [--check <README.md> | --write <README.md>] [--section <name>]',
    });
  }
  const section = values.section;
  const connector = kind ? await loadConnector(reference, kind as 'source') : await loadConnector(reference);
  const table = renderSpecTable(connector.spec.connectionSpecification);
  const readmePath = values.check ?? values.write;
  if (!readmePath) {
    process.stdout.write(table + '\n');
    return 0;
  }
  let readme: string;
  try {
    readme = await readFile(readmePath, 'utf8');
  } catch (error) {
    throw new TributaryError('config', { userMessage: `Cannot read ${readmePath}: ${(error as Error).message}` });
  }
  const updated = updateReadmeSection(readme, table, readmePath, section);
  if (values.check) {
    if (updated === readme) return 0;
    process.stderr.write(
      `error: ${readmePath} is stale: run tributary docs ${reference}${kind ? ` --kind ${kind}` : ''}${section ? ` --section ${section}` : ''} --write ${readmePath}\n`,
    );
    return 1;
  }
  if (updated !== readme) await writeFile(readmePath, updated);
  process.stderr.write(`${readmePath}: parameter table ${updated === readme ? 'already up to date' : 'updated'}\n`);
  return 0;
}

/** `new`: scaffolds a connector package that passes its conformance suite as generated (scaffold/). */
async function newCommand(args: string[]): Promise<number> {
  const { values, positionals } = usageErrors(() => parseArgs({ args, allowPositionals: true, options: { dir: { type: 'string' } } }));
  const [kind, name, ...extra] = positionals;
  if (!isConnectorKind(kind) || !name || extra.length > 0) {
    throw new TributaryError('config', { userMessage: 'Usage: tributary new source|destination|writer <name> [--dir <path>]' });
  }
  const created = await createConnectorPackage({ kind, name, ...(values.dir !== undefined ? { directory: values.dir } : {}) });
  process.stdout.write(describeCreated(created));
  return 0;
}

async function connectorsCommand(): Promise<number> {
  const installed = await listInstalledConnectors();
  if (installed.length === 0) {
    process.stdout.write('No connector packages installed (packages with the keyword "tributary-connector").\n');
    return 0;
  }
  const rows = installed.map((c) => [c.kind, c.name, c.packageName, c.version]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length), ['KIND', 'NAME', 'PACKAGE'][i]!.length));
  const line = (r: string[]): string => r.map((v, i) => (i < 3 ? v.padEnd(widths[i]!) : v)).join('  ');
  process.stdout.write([line(['KIND', 'NAME', 'PACKAGE', 'VERSION']), ...rows.map(line)].join('\n') + '\n');
  return 0;
}
