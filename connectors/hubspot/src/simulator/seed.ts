import type { HubspotSimulator } from './server.js';

const SEED_EPOCH = Date.parse('2024-01-01T00:00:00Z');

/**
 * Seeds a simulator with data that exercises what breaks naive connectors: `contacts` contacts of which `tie` share one modification millisecond
 * (in the middle), the rest one second apart; companies and deals; contact->company links.
 */
export function seedHubspot(sim: HubspotSimulator, counts: { contacts: number; tie?: number; companies?: number; deals?: number; archived?: number }): void {
  const tie = counts.tie ?? 0;
  const tieAt = SEED_EPOCH + 3_600_000;
  const companies: number[] = [];
  for (let i = 0; i < (counts.companies ?? 0); i++) {
    companies.push(sim.create('companies', { name: `Company ${i}`, domain: `company${i}.example`, numberofemployees: String(10 + i) }, SEED_EPOCH + i * 1000).id);
  }
  for (let i = 0; i < counts.contacts; i++) {
    const at = i < tie ? tieAt : SEED_EPOCH + (i - tie) * 1000 + (i - tie >= 50 ? 7_200_000 : 0);
    const contact = sim.create('contacts', { email: `c${i}@example.com`, firstname: `First${i}`, lastname: `Last${i}`, num_notes: String(i % 7), hs_email_optout: i % 2 === 0 ? 'true' : 'false', lifecyclestage: 'lead' }, at);
    if (companies.length > 0 && i % 3 === 0) sim.associate('contacts', contact.id, 'companies', companies[i % companies.length]!);
  }
  for (let i = 0; i < (counts.deals ?? 0); i++) {
    sim.create('deals', { dealname: `Deal ${i}`, amount: String(1000 * i), dealstage: 'closedwon', closedate: new Date(SEED_EPOCH + i * 86_400_000).toISOString() }, SEED_EPOCH + i * 500);
  }
  const contacts = sim.objects('contacts');
  for (let i = 0; i < (counts.archived ?? 0); i++) sim.archive('contacts', contacts[contacts.length - 1 - i]!.id, SEED_EPOCH + 9_000_000 + i);
}
