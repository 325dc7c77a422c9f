// The example connector pair of docs/guide.md, and the simulator of the API it talks to.
export { httpCrmSource, sourceSpec } from './source.js';
export { httpCrmWriter, writerSpec } from './writer.js';
export {
  startSimulator,
  SIMULATOR_REQUESTS_PER_SECOND,
  MAX_PAGE_SIZE,
  MAX_UPSERT_BATCH,
  type CrmSimulator,
  type SimulatorOptions,
  type SimulatorStats,
  type ServedRequest,
} from './simulator.js';
export type { Contact, ContactPage, ContactProperties, UpsertInput, UpsertRequest, UpsertResponse, UpsertResult, UpsertStatus } from './api.js';
