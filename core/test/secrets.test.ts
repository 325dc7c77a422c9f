import { describe, expect, it } from 'vitest';
import { collectSecrets, createRedactor, redactValue, TributaryError } from '@tributary/core';
import { AirbyteWriter } from '../src/cli/output.js';

const schema = { type: 'object', properties: { api_key: { type: 'string', airbyte_secret: true } } };
// Passwords with quotes, backslashes and control characters: JSON writes them as escapes.
const secrets = ['pa"ss\\word-123', 'line\nbreak-secret', 'tab\tand"quote', 'ends-with-backslash\\'];

function captured(): { lines: string[]; stream: NodeJS.WritableStream } {
  const lines: string[] = [];
  const stream = { write: (chunk: string) => (lines.push(...chunk.split('\n').filter(Boolean)), true) } as unknown as NodeJS.WritableStream;
  return { lines, stream };
}

describe('secret redaction', () => {
  it.each(secrets)('masks a secret written JSON-escaped in protocol output (%j)', (secret) => {
    const { lines, stream } = captured();
    const writer = new AirbyteWriter(stream, createRedactor(collectSecrets(schema, { api_key: secret })));
    writer.log('INFO', `connecting with ${secret}`);
    // A log line whose fields were serialized before the message itself (escaped twice).
    writer.log('WARN', `request failed ${JSON.stringify({ header: `Bearer ${secret}` })}`);
    writer.error(new TributaryError('auth', { userMessage: `key ${secret} was refused`, internalMessage: secret }));
    expect(lines).toHaveLength(3);
    const escaped = (s: string): string => JSON.stringify(s).slice(1, -1);
    for (const line of lines) {
      const message = JSON.stringify(JSON.parse(line));
      for (const form of [secret, escaped(secret), escaped(escaped(secret))]) {
        expect(line).not.toContain(form);
        expect(message).not.toContain(form);
      }
      expect(line).toContain('**********');
    }
  });

  it('keeps JSON valid when masking values inside it', () => {
    for (const secret of secrets) {
      const redact = createRedactor([secret]);
      expect(redactValue({ a: `x${secret}y`, b: [secret] }, redact)).toEqual({ a: 'x**********y', b: ['**********'] });
    }
  });
});
