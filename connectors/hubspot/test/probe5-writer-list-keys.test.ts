// The HubSpot writer's listKeys against the simulator, through the real @hubspot/api-client:
// every live record's key, across list pages; archived records and records without the
// property are not listed.
import { describe, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, runWriter } from '@tributary/core';
import { hubspotWriter } from '../src/index.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();

describe('hubspot writer: listKeys', () => {
  it('lists the key of every live record, across pages', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    const config = parseConfig(hubspotWriter.spec.connectionSpecification, { access_token: sim.token, base_url: sim.url });
    const records = Array.from({ length: 230 }, (_, i) => ({ email: `p${i}@example.com`, firstname: 'P' }));
    const written = await runWriter({ writer: hubspotWriter, config, object: 'contacts', mode: 'upsert', idProperty: 'email', records });
    expect(written.results?.every((r) => r.status === 'created')).toBe(true);
    // Made in HubSpot directly: one without an email (no key), one archived.
    sim.create('contacts', { firstname: 'No email' });
    const gone = sim.create('contacts', { email: 'gone@example.com' });
    sim.archive('contacts', Number(gone.id));

    const session = await hubspotWriter.open(createConnectorContext(), config);
    const listed: string[] = [];
    try {
      for await (const key of session.listKeys!('contacts', 'email')) listed.push(key);
    } finally {
      await session.close();
    }
    expect(listed.sort()).toEqual(records.map((r) => r.email).sort());
  });
});
