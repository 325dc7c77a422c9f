import { sourceConformance } from '@tributary/conformance';
import { sampleSource } from '../src/index.js';

sourceConformance({
  source: sampleSource,
  config: { seed: 7, counts: { companies: 25, contacts: 40, deals: 12, activities: 60 }, checkpoint_every: 7 },
  badConfig: { seed: 'x' },
  emptyConfig: { seed: 7, counts: { companies: 5, contacts: 0, deals: 0, activities: 3 }, checkpoint_every: 7 },
});
