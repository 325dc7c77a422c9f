import { describe, expect, it } from 'vitest';
import { TributaryError, toErrorTrace, toTributaryError } from '@tributary/core';

describe('TributaryError', () => {
  it('maps kinds to Airbyte failure types', () => {
    expect(toErrorTrace(new TributaryError('config', { userMessage: 'bad' })).failure_type).toBe('config_error');
    expect(toErrorTrace(new TributaryError('auth', { userMessage: 'bad' })).failure_type).toBe('config_error');
    expect(toErrorTrace(new TributaryError('rate_limited', { userMessage: 'slow' })).failure_type).toBe('transient_error');
    expect(toErrorTrace(new Error('boom')).failure_type).toBe('system_error');
  });
  it('classifies network errors as transient', () => {
    const e = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
    expect(toTributaryError(e).kind).toBe('transient');
  });
});
