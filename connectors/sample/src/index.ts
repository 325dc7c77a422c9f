import { TributaryError, defineSource } from '@tributary/core';
import { sampleCatalog } from './catalog.js';
import { SAMPLE_STREAMS, assertApiKey, resolveConfig, sampleConfigSchema } from './config.js';
import { createDataset, cursorRangeProblem, type Dataset } from './dataset.js';
import { asyncReader, createMessageReader, planRead } from './read.js';

export { sampleConfigSchema, type SampleConfig, type SampleStream, SAMPLE_STREAMS } from './config.js';
export { TIE_GROUP_SIZE, createDataset, type Dataset, type StreamGenerator } from './dataset.js';
export { STREAM_SCHEMAS } from './catalog.js';

function datasetOf(config: Parameters<typeof resolveConfig>[0]): Dataset {
  const resolved = resolveConfig(config);
  const dataset = createDataset(resolved);
  for (const stream of SAMPLE_STREAMS) {
    const problem = cursorRangeProblem(dataset[stream], resolved.startMs);
    if (problem !== undefined) throw new TributaryError('config', { userMessage: problem });
  }
  return dataset;
}

/**
 * A deterministic, seeded CRM dataset of any size: companies, contacts, deals and an
 * activities event stream. Used by the demo, the conformance suite and the benchmarks.
 * Record i of a stream depends only on the config and i (see dataset.ts), so reads
 * resume at any checkpoint, and `api_key: "invalid"` exercises the auth-error path.
 */
export const sampleSource = defineSource({
  name: 'sample',
  version: '0.1.0',
  spec: {
    connectionSpecification: sampleConfigSchema,
    supportsIncremental: true,
  },
  async check(_ctx, config) {
    assertApiKey(config);
    datasetOf(config);
  },
  async discover(_ctx, config) {
    assertApiKey(config);
    return sampleCatalog();
  },
  read(ctx, config, catalog, state) {
    return asyncReader(() => {
      assertApiKey(config);
      const resolved = resolveConfig(config);
      const plans = planRead(datasetOf(config), catalog, state);
      return createMessageReader(plans, resolved.checkpointEvery, ctx.signal, resolved.pageSize);
    });
  },
});

export default sampleSource;

export { forEachSampleRecord } from './expected.js';
