import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseConfig, readSyncFile, TributaryError } from '@tributary/core';
import { lakeConfigSchema, type LakeConfig } from './config.js';

/** The lake config from a lake config JSON file or a sync file (YAML/JSON) with `destination.connector: lake`. */
export async function loadLakeConfig(path: string): Promise<LakeConfig> {
  let raw: unknown;
  if (extname(path) === '.json') {
    try {
      raw = JSON.parse(await readFile(path, 'utf8')) as unknown;
    } catch (error) {
      throw new TributaryError('config', { userMessage: `Cannot read the lake config ${path}: ${(error as Error).message}`, cause: error });
    }
  }
  if (raw === undefined || (typeof raw === 'object' && raw !== null && 'destination' in raw)) {
    const sync = await readSyncFile(path);
    if (!sync.destination || !/(^|[-/])lake$/.test(sync.destination.connector)) {
      throw new TributaryError('config', { userMessage: `${path} is a sync file whose destination is not the lake (${sync.destination?.connector ?? 'a writer'})` });
    }
    raw = sync.destination.config;
  }
  return parseConfig(lakeConfigSchema, raw, 'lake config');
}

