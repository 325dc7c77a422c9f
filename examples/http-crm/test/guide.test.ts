/**
 * docs/guide.md quotes the example instead of paraphrasing it: every code block tagged
 * ```ts file=<path> must appear verbatim in that file, so the guide cannot drift from the
 * code it teaches. Relative links of both docs pages must point at files that exist.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const GUIDE = 'docs/guide.md';
const guide = readFileSync(resolve(REPO, GUIDE), 'utf8');

interface Excerpt {
  file: string;
  code: string;
  line: number;
}

/** Fenced blocks opened by a line ```ts file=<path>, up to the next line that is just ```. */
function excerpts(markdown: string): Excerpt[] {
  const out: Excerpt[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```ts file=(\S+)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const end = lines.indexOf('```', i + 1);
    if (end < 0) throw new Error(`${GUIDE}:${i + 1}: unterminated code block`);
    out.push({ file: open[1]!, code: lines.slice(i + 1, end).join('\n'), line: i + 1 });
    i = end;
  }
  return out;
}

describe('docs/guide.md', () => {
  const blocks = excerpts(guide);

  it('quotes the example files (at least one excerpt of source, writer, api and simulator)', () => {
    const files = new Set(blocks.map((b) => b.file));
    for (const file of ['source.ts', 'writer.ts', 'api.ts', 'simulator.ts']) expect(files).toContain(`examples/http-crm/src/${file}`);
  });

  for (const block of blocks) {
    it(`${GUIDE}:${block.line} appears verbatim in ${block.file}`, () => {
      const path = resolve(REPO, block.file);
      expect(existsSync(path), `${block.file} does not exist`).toBe(true);
      expect(block.code.trim().length).toBeGreaterThan(0);
      const source = readFileSync(path, 'utf8');
      expect(source.includes(block.code), `the excerpt at ${GUIDE}:${block.line} is no longer in ${block.file}; copy it again from the file`).toBe(true);
    });
  }

  for (const page of [GUIDE, 'docs/connector-contract.md']) {
    it(`${page}: relative links point at files that exist`, () => {
      const text = readFileSync(resolve(REPO, page), 'utf8');
      const targets = [...text.matchAll(/\]\((?!https?:|#)([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!);
      expect(targets.length).toBeGreaterThan(0);
      const missing = targets.filter((target) => !existsSync(resolve(REPO, dirname(page), target)));
      expect(missing).toEqual([]);
    });
  }
});
