// Writer results for unique properties other than email: HubSpot folds only email case, so
// `Acme.example` and `acme.example` are two companies, and each record's result must be its
// own — a refused record must not borrow the success of the other key's record.
import { describe, expect, it } from 'vitest';
import { parseConfig, runWriter } from '@tributary/core';
import { hubspotWriter } from '../src/index.js';
import { useSimulators } from './support.js';

const simulator = useSimulators();

describe('hubspot writer: keys of case-sensitive unique properties', () => {
  it('a refused company is reported failed, not with the result of a domain differing only in case', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    const config = parseConfig(hubspotWriter.spec.connectionSpecification, { access_token: sim.token, base_url: sim.url });
    const result = await runWriter({
      writer: hubspotWriter,
      config,
      object: 'companies',
      mode: 'upsert',
      idProperty: 'domain',
      records: [
        { domain: 'Acme.example', name: 'Upper', numberofemployees: 'many' },
        { domain: 'acme.example', name: 'Lower', numberofemployees: 12 },
      ],
    });
    const stored = sim.objects('companies');
    expect(stored.map((c) => c.properties.domain)).toEqual(['acme.example']);
    const byKey = new Map(result.results!.map((r) => [r.key, r]));
    expect(byKey.get('Acme.example')?.status).toBe('failed');
    expect(byKey.get('Acme.example')?.reason).toMatch(/many is not a valid number for "numberofemployees"/);
    expect(byKey.get('acme.example')).toMatchObject({ status: 'created', id: String(stored[0]!.id) });
  });

  it('two companies whose domains differ only in case each get their own id', async () => {
    const sim = await simulator({ searchLagMs: 0 });
    const config = parseConfig(hubspotWriter.spec.connectionSpecification, { access_token: sim.token, base_url: sim.url });
    const result = await runWriter({
      writer: hubspotWriter,
      config,
      object: 'companies',
      mode: 'upsert',
      idProperty: 'domain',
      records: [
        { domain: 'Acme.example', name: 'Upper' },
        { domain: 'acme.example', name: 'Lower' },
      ],
    });
    const idOf = new Map(sim.objects('companies').map((c) => [c.properties.domain, String(c.id)]));
    expect(idOf.size).toBe(2);
    expect(result.results!.map((r) => [r.key, r.status, r.id])).toEqual([
      ['Acme.example', 'created', idOf.get('Acme.example')],
      ['acme.example', 'created', idOf.get('acme.example')],
    ]);
  });
});
