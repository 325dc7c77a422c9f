import { afterAll, beforeAll } from 'vitest';
import { destinationConformance } from '@tributary/conformance';
import { lakeDestination, readStreamRows } from '../src/index.js';
import { startMoto, type MotoServer } from './helpers.js';

// The destination conformance suite against the lake on a real S3 server (moto_server):
// one bucket, a fresh key prefix per case.
let moto: MotoServer;
beforeAll(async () => {
  moto = await startMoto();
  await moto.createBucket('conformance');
});
afterAll(() => moto?.stop());
let n = 0;

destinationConformance({
  destination: lakeDestination,
  config: () => ({
    target: 's3',
    bucket: 'conformance',
    prefix: `case-${++n}/`,
    endpoint: moto.endpoint,
    force_path_style: true,
    access_key_id: 'testing',
    secret_access_key: 'testing',
    default_tenant: 'acme',
  }),
  readBack: async (config, stream) => (await readStreamRows(config, { stream })).map((row) => row.payload),
  module: '@tributary/destination-lake',
});
