// Child process for the crash test: upserts batches of 100 new contacts into the CRM at
// argv[2] until it is killed, printing `batch <n>` after each batch is acknowledged.
import { createConnectorContext, parseConfig } from '@tributary/core';
import { sampleWriter } from '@tributary/writer-sample';

const directory = process.argv[2];
if (!directory) throw new Error('usage: write-forever.ts <directory>');
const config = parseConfig(sampleWriter.spec.connectionSpecification, { directory });
const session = await sampleWriter.open(createConnectorContext(), config);
for (let batch = 0; ; batch++) {
  const records = Array.from({ length: 100 }, (_, i) => {
    const email = `person${batch * 100 + i}@acme.example`;
    return { idempotencyKey: email, key: email, fields: { firstname: `P${batch * 100 + i}` } };
  });
  const results = await session.write({ object: 'contacts', mode: 'upsert', idProperty: 'email', records, dryRun: false });
  if (results.some((r) => r.status !== 'created')) throw new Error(`batch ${batch}: unexpected ${JSON.stringify(results[0])}`);
  process.stdout.write(`batch ${batch + 1}\n`);
}
