import { resolve } from 'node:path';
import { TributaryError } from '@tributary/core';
import type { LakeConfig } from '../config.js';
import { createLocalStore } from './local-store.js';
import { createS3Store } from './s3-store.js';
import type { LakeStore } from './store.js';

export function openStore(config: LakeConfig): LakeStore {
  if (config.target === 's3') {
    if (!config.bucket) throw new TributaryError('config', { userMessage: 'The lake config has target: s3 but no bucket: set `bucket`' });
    return createS3Store({
      bucket: config.bucket,
      ...(config.prefix ? { prefix: config.prefix } : {}),
      ...(config.region ? { region: config.region } : {}),
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      forcePathStyle: config.force_path_style ?? false,
      ...(config.access_key_id ? { accessKeyId: config.access_key_id } : {}),
      ...(config.secret_access_key ? { secretAccessKey: config.secret_access_key } : {}),
      ...(config.session_token ? { sessionToken: config.session_token } : {}),
    });
  }
  return createLocalStore(resolve(config.path ?? './lake'));
}
