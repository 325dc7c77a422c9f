import { afterEach } from 'vitest';
import { startHubspotSimulator, type HubspotSimulator } from '../src/simulator/index.js';

/**
 * Starts HubSpot simulators for the calling test file: each one the returned function starts
 * is closed after the test that started it.
 */
export function useSimulators(): (options?: Parameters<typeof startHubspotSimulator>[0]) => Promise<HubspotSimulator> {
  const running: HubspotSimulator[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.close()));
  });
  return async (options = {}) => {
    const sim = await startHubspotSimulator(options);
    running.push(sim);
    return sim;
  };
}
