import { describe, expect, it } from 'vitest';
import { SPEC_TABLE_END, SPEC_TABLE_START, TributaryError, readReadmeSection, renderSpecTable, specTableMarkers, updateReadmeSection } from '@tributary/core';

const HEADER = '| Parameter | Type | Required | Default | Description |\n| --- | --- | --- | --- | --- |';

/** The table's body rows, each split into its five cells (split on unescaped `|`). */
function rowsOf(table: string): string[][] {
  const lines = table.split('\n');
  expect(lines.slice(0, 2).join('\n')).toBe(HEADER);
  return lines.slice(2).map((line) => {
    expect(line.startsWith('| ') && line.endsWith(' |')).toBe(true);
    const cells = line.slice(2, -2).split(/ (?<!\\)\| /);
    expect(cells).toHaveLength(5);
    return cells;
  });
}

function rowFor(table: string, parameter: string): string[] {
  const row = rowsOf(table).find((cells) => cells[0] === parameter);
  if (!row) throw new Error(`no row ${parameter} in\n${table}`);
  return row;
}

describe('renderSpecTable', () => {
  it('renders one row per property with type, required, default and description', () => {
    const table = renderSpecTable({
      type: 'object',
      required: ['host'],
      properties: {
        host: { type: 'string', title: 'Host', description: 'Server name.', format: 'hostname' },
        port: { type: 'integer', minimum: 1, maximum: 65535, default: 5432 },
        ratio: { type: 'number', exclusiveMinimum: 0 },
        tags: { type: 'array', items: { type: 'string' }, minItems: 1 },
        label: { type: ['string', 'null'], minLength: 1, default: '' },
        flag: { type: 'boolean', default: false, title: 'Flag' },
        anything: {},
      },
    });
    expect(table).toBe(
      [
        HEADER,
        '| `host` | string (hostname) | yes | — | **Host**: Server name. |',
        '| `port` | integer ≥ 1 and ≤ 65535 | no | `5432` | — |',
        '| `ratio` | number > 0 | no | — | — |',
        '| `tags` | array of string (≥ 1 items) | no | — | — |',
        '| `label` | string or null (non-empty) | no | `""` | — |',
        '| `flag` | boolean | no | `false` | **Flag** |',
        '| `anything` | any | no | — | — |',
      ].join('\n'),
    );
  });

  it('never prints the default, examples or allowed values of a secret, and says it is one', () => {
    const table = renderSpecTable({
      type: 'object',
      required: ['api_key'],
      properties: {
        api_key: { type: 'string', airbyte_secret: true, default: 'sk-default-123', examples: ['sk-example-456'], description: 'The key.' },
        mode: { type: 'string', airbyte_secret: true, enum: ['sk-enum-789'] },
        token: { type: 'string', airbyte_secret: true, const: 'sk-const-000' },
        credentials: {
          type: 'object',
          airbyte_secret: true,
          properties: { inner: { type: 'string', default: 'sk-inner-111' } },
        },
        auth: {
          type: 'object',
          default: { user: 'me', password: 'sk-nested-222' },
          examples: [{ user: 'you', password: 'sk-nested-333' }],
          properties: { user: { type: 'string' }, password: { type: 'string', airbyte_secret: true } },
        },
      },
    });
    for (const secret of ['sk-default-123', 'sk-example-456', 'sk-enum-789', 'sk-const-000', 'sk-inner-111', 'sk-nested-222', 'sk-nested-333']) {
      expect(table).not.toContain(secret);
    }
    expect(rowFor(table, '`api_key`')).toEqual(['`api_key`', 'string (secret)', 'yes', '—', 'The key.']);
    expect(rowFor(table, '`mode`')[1]).toBe('string (secret)');
    // Everything under a secret is secret.
    expect(rowFor(table, '`credentials.inner`')).toEqual(['`credentials.inner`', 'string (secret)', 'no', '—', '—']);
    // An object default shows its other fields and masks the secret one.
    expect(rowFor(table, '`auth`')[3]).toBe('`{"user":"me","password":"**********"}`');
    expect(rowFor(table, '`auth`')[4]).toBe('Example: `{"user":"you","password":"**********"}`');
    expect(rowFor(table, '`auth.password`')[1]).toBe('string (secret)');
  });

  it('renders nested objects as dotted paths, required relative to optional parents', () => {
    const table = renderSpecTable({
      type: 'object',
      required: ['connection'],
      properties: {
        connection: {
          type: 'object',
          required: ['host'],
          properties: {
            host: { type: 'string' },
            tls: { type: 'object', required: ['ca'], properties: { ca: { type: 'string' }, verify: { type: 'boolean', default: true } } },
          },
        },
        list: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } },
      },
    });
    expect(rowsOf(table).map((r) => [r[0], r[1], r[2]])).toEqual([
      ['`connection`', 'object', 'yes'],
      ['`connection.host`', 'string', 'yes'],
      ['`connection.tls`', 'object', 'no'],
      ['`connection.tls.ca`', 'string', 'yes, if `connection.tls` is set'],
      ['`connection.tls.verify`', 'boolean', 'no'],
      ['`list`', 'array of object', 'no'],
      ['`list[].name`', 'string', 'yes, if `list` is set'],
    ]);
  });

  it('lists enum and const values as allowed values', () => {
    const table = renderSpecTable({
      type: 'object',
      properties: {
        level: { type: 'string', enum: ['debug', 'info', ''], default: 'info', description: 'Log level.' },
        untyped: { enum: [1, 'one', null] },
        kind: { type: 'string', const: 'oauth' },
        region: {
          type: 'string',
          oneOf: [
            { const: 'eu', title: 'Europe' },
            { const: 'us', title: 'United States' },
          ],
        },
        modes: { type: 'array', items: { type: 'string', enum: ['a', 'b'] }, uniqueItems: true },
      },
    });
    expect(rowFor(table, '`level`')).toEqual(['`level`', 'string', 'no', '`info`', 'Log level.<br>Allowed values: `debug`, `info`, `""`']);
    expect(rowFor(table, '`untyped`').slice(1, 2)).toEqual(['integer or string or null']);
    expect(rowFor(table, '`untyped`')[4]).toBe('Allowed values: `1`, `one`, `null`');
    expect(rowFor(table, '`kind`')[4]).toBe('Must be `oauth`');
    expect(rowFor(table, '`region`')[4]).toBe('Allowed values: `eu` (Europe), `us` (United States)');
    expect(rowFor(table, '`modes`')[1]).toBe('array of string (unique items)');
    expect(rowFor(table, '`modes`')[4]).toBe('Allowed items: `a`, `b`');
  });

  it('shows defaults and examples of every JSON type', () => {
    const table = renderSpecTable({
      type: 'object',
      properties: {
        n: { type: 'number', default: 0.5, examples: [1, 2] },
        s: { type: 'string', default: 'x y', examples: ['one'] },
        padded: { type: 'string', default: ' x ' },
        o: { type: 'object', default: { a: [1, null] } },
        a: { type: 'array', default: [] },
        nul: { type: 'null', default: null },
      },
    });
    expect(rowFor(table, '`n`').slice(3)).toEqual(['`0.5`', 'Examples: `1`, `2`']);
    expect(rowFor(table, '`s`').slice(3)).toEqual(['`x y`', 'Example: `one`']);
    expect(rowFor(table, '`padded`')[3]).toBe('`" x "`');
    expect(rowFor(table, '`o`')[3]).toBe('`{"a":[1,null]}`');
    expect(rowFor(table, '`a`')[3]).toBe('`[]`');
    expect(rowFor(table, '`nul`')[3]).toBe('`null`');
  });

  it('escapes pipes and line breaks, and keeps backticks inside code spans', () => {
    const table = renderSpecTable({
      type: 'object',
      properties: {
        'odd|name': {
          type: 'string',
          title: 'A | B',
          description: 'First line.\nSecond | line.\r\nThird.',
          default: 'a|b',
          pattern: '^(x|y)$',
        },
        tick: { type: 'string', default: 'a`b', examples: ['`'] },
      },
    });
    const lines = table.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[2]).toBe(
      '| `odd\\|name` | string (pattern `^(x\\|y)$`) | no | `a\\|b` | **A \\| B**: First line.<br>Second \\| line.<br>Third. |',
    );
    expect(rowFor(table, '`odd\\|name`')).toHaveLength(5);
    expect(rowFor(table, '`tick`').slice(3)).toEqual(['``a`b``', 'Example: `` ` ``']);
  });

  it('sorts by order, then by appearance; children stay under their parent', () => {
    const table = renderSpecTable({
      type: 'object',
      properties: {
        last: { type: 'string' },
        b: { type: 'string', order: 1 },
        nested: { type: 'object', order: 0, properties: { y: { type: 'string', order: 2 }, x: { type: 'string', order: 1 }, z: { type: 'string' } } },
        a: { type: 'string', order: 1 },
        first: { type: 'string', order: -1 },
      },
    });
    expect(rowsOf(table).map((r) => r[0])).toEqual(['`first`', '`nested`', '`nested.x`', '`nested.y`', '`nested.z`', '`b`', '`a`', '`last`']);
  });

  it('renders oneOf options by title, then their fields', () => {
    const table = renderSpecTable({
      type: 'object',
      required: ['credentials'],
      properties: {
        credentials: {
          type: 'object',
          title: 'Authentication',
          oneOf: [
            {
              title: 'OAuth',
              description: 'Sign in with the CRM.',
              type: 'object',
              required: ['auth_type', 'client_secret'],
              properties: {
                auth_type: { type: 'string', const: 'oauth', order: 0 },
                client_secret: { type: 'string', airbyte_secret: true, examples: ['sk-oauth-1'], order: 1 },
              },
            },
            {
              type: 'object',
              required: ['auth_type'],
              properties: { auth_type: { type: 'string', const: 'key' }, key: { type: 'string', airbyte_secret: true } },
            },
          ],
        },
        value: { anyOf: [{ type: 'string', format: 'date' }, { type: 'integer', minimum: 0 }] },
      },
    });
    expect(table).not.toContain('sk-oauth-1');
    expect(rowsOf(table)).toEqual([
      ['`credentials`', 'one of: OAuth, option 2', 'yes', '—', '**Authentication**'],
      ['`credentials` → **OAuth**', 'object', '—', '—', 'Sign in with the CRM.'],
      ['`credentials.auth_type` (OAuth)', 'string', 'yes', '—', 'Must be `oauth`'],
      ['`credentials.client_secret` (OAuth)', 'string (secret)', 'yes', '—', '—'],
      ['`credentials` → **option 2**', 'object', '—', '—', '—'],
      ['`credentials.auth_type` (option 2)', 'string', 'yes', '—', 'Must be `key`'],
      ['`credentials.key` (option 2)', 'string (secret)', 'no', '—', '—'],
      ['`value`', 'string (date) or integer ≥ 0', 'no', '—', '—'],
    ]);
  });

  it('follows local $refs and allOf, and stops at a reference cycle', () => {
    const table = renderSpecTable({
      type: 'object',
      definitions: {
        port: { type: 'integer', minimum: 1, description: 'A port.' },
        node: { type: 'object', properties: { name: { type: 'string' }, child: { $ref: '#/definitions/node' } } },
      },
      allOf: [{ properties: { extra: { type: 'boolean' } }, required: ['extra'] }],
      properties: {
        port: { $ref: '#/definitions/port', default: 80 },
        tree: { $ref: '#/definitions/node' },
      },
    });
    expect(rowsOf(table).map((r) => r.slice(0, 4))).toEqual([
      ['`port`', 'integer ≥ 1', 'no', '`80`'],
      ['`tree`', 'object', 'no', '—'],
      ['`tree.name`', 'string', 'no', '—'],
      ['`tree.child`', 'any', 'no', '—'],
      ['`extra`', 'boolean', 'yes', '—'],
    ]);
  });

  it('is deterministic and renders an empty schema as a bare header', () => {
    const schema = { type: 'object', properties: { b: { type: 'string' }, a: { type: 'integer', default: 1 } } };
    expect(renderSpecTable(schema)).toBe(renderSpecTable(structuredClone(schema)));
    expect(renderSpecTable({ type: 'object' })).toBe(HEADER);
  });
});

describe('updateReadmeSection / readReadmeSection', () => {
  const table = `${HEADER}\n| \`a\` | string | no | — | — |`;
  const readme = `# Connector\n\nIntro.\n\n${SPEC_TABLE_START}\nold table\nmore\n${SPEC_TABLE_END}\n\n## After\n`;

  it('replaces only the content between the markers, idempotently', () => {
    const updated = updateReadmeSection(readme, table);
    expect(updated).toBe(`# Connector\n\nIntro.\n\n${SPEC_TABLE_START}\n${table}\n${SPEC_TABLE_END}\n\n## After\n`);
    expect(updateReadmeSection(updated, table)).toBe(updated);
    expect(readReadmeSection(updated)).toBe(table);
    expect(readReadmeSection(readme)).toBe('old table\nmore');
  });

  it('fills an empty section and keeps CRLF line endings', () => {
    expect(updateReadmeSection(`${SPEC_TABLE_START}${SPEC_TABLE_END}`, 'T')).toBe(`${SPEC_TABLE_START}\nT\n${SPEC_TABLE_END}`);
    const crlf = readme.replace(/\n/g, '\r\n');
    const updated = updateReadmeSection(crlf, table);
    expect(updated).toBe(updateReadmeSection(readme, table).replace(/\n/g, '\r\n'));
    expect(readReadmeSection(updated)).toBe(table);
  });

  it('throws a config error naming the file when the markers are missing, repeated or reversed', () => {
    const attempt = (text: string): TributaryError => {
      try {
        updateReadmeSection(text, table, 'connectors/x/README.md');
      } catch (error) {
        if (error instanceof TributaryError) return error;
        throw error;
      }
      throw new Error('no error thrown');
    };
    const missing = attempt('# No markers\n');
    expect(missing.kind).toBe('config');
    expect(missing.userMessage).toContain('connectors/x/README.md has no spec table section');
    expect(missing.userMessage).toContain(SPEC_TABLE_START);
    expect(missing.userMessage).toContain(SPEC_TABLE_END);
    expect(attempt(`${SPEC_TABLE_START}\n`).userMessage).toContain(`missing ${SPEC_TABLE_END}`);
    expect(attempt(`${readme}${readme}`).userMessage).toContain('more than one spec table section');
    expect(attempt(`${SPEC_TABLE_END}\n${SPEC_TABLE_START}\n`).userMessage).toContain('comes before');
    expect(() => readReadmeSection('nothing')).toThrow(/README has no spec table section/);
  });
});

describe('named spec table sections (a README documenting a source and a writer)', () => {
  const readme = [
    '# crm',
    '## Source',
    '<!-- tributary:spec-table:start source -->',
    'old source table',
    '<!-- tributary:spec-table:end source -->',
    '## Writer',
    '<!-- tributary:spec-table:start writer -->',
    'old writer table',
    '<!-- tributary:spec-table:end writer -->',
    '',
  ].join('\n');

  it('updates and reads each section by name, leaving the other alone', () => {
    const updated = updateReadmeSection(readme, '| writer |', 'README.md', 'writer');
    expect(readReadmeSection(updated, 'README.md', 'writer')).toBe('| writer |');
    expect(readReadmeSection(updated, 'README.md', 'source')).toBe('old source table');
    expect(updateReadmeSection(updated, '| writer |', 'README.md', 'writer')).toBe(updated);
  });

  it('does not take a named section for the unnamed one, and names a missing section in the error', () => {
    expect(() => readReadmeSection(readme, 'README.md')).toThrow(/README.md has no spec table section \(missing <!-- tributary:spec-table:start -->\)/);
    expect(() => readReadmeSection(readme, 'README.md', 'destination')).toThrow(/missing <!-- tributary:spec-table:start destination -->/);
    expect(() => specTableMarkers('bad name')).toThrow(/Section name "bad name"/);
  });
});
