import { expect, it } from 'vitest';
import { stringifyJson } from '../src/index.js';
import { stringifyJsonIteratively } from '../src/util/json-text.js';

/** A value nested `depth` levels deep: {"a":{"a":…[leaf]…}} alternating objects and arrays. */
function nested(depth: number, leaf: unknown = 'x'): unknown {
  let value: unknown = leaf;
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? { a: value, n: i } : [value, null];
  return value;
}

it('the iterative walk gives exactly what JSON.stringify gives', () => {
  const date = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6));
  const samples: unknown[] = [
    null, true, false, 0, -0, 1.5, 1e21, Number.NaN, Number.POSITIVE_INFINITY, '', 'é "q" \\ \n \u0001 \ud800 😀', [], {},
    [undefined, () => 1, Symbol('s'), null, 1], { u: undefined, f: () => 1, s: Symbol('s'), n: null, z: 0 },
    { date, nested: { toJSON: (key: string) => `key:${key}` }, boxed: [new Number(3), new String('s'), new Boolean(false)] },
    // eslint-disable-next-line no-sparse-arrays
    [1, , 3], { b: 1, a: [{ c: { d: [] } }], '': 'empty key', '__proto__x': 2 }, nested(50), undefined,
  ];
  for (const sample of samples) expect(stringifyJsonIteratively(sample)).toBe(JSON.stringify(sample));
  const shared = { k: 1 };
  expect(stringifyJsonIteratively([shared, shared])).toBe('[{"k":1},{"k":1}]');
});

it('serializes values nested deeper than JSON.stringify can (which throws RangeError)', () => {
  const deep = nested(50_000);
  expect(() => JSON.stringify(deep)).toThrow(RangeError);
  const text = stringifyJson(deep)!;
  // JSON.parse reads any depth: the text round-trips.
  expect(stringifyJsonIteratively(JSON.parse(text))).toBe(text);
  expect(text.startsWith('[{"a":[{"a":')).toBe(true);
  expect(text.length).toBeGreaterThan(50_000 * 5);
});

it('keeps JSON.stringify errors other than the stack depth: cycles, BigInt', () => {
  const cycle: Record<string, unknown> = { a: 1 };
  cycle.self = cycle;
  expect(() => stringifyJson(cycle)).toThrow(TypeError);
  expect(() => stringifyJsonIteratively(cycle)).toThrow(/circular/);
  expect(() => stringifyJson({ n: 1n })).toThrow(TypeError);
  expect(() => stringifyJsonIteratively({ n: 1n })).toThrow(TypeError);
  let deepCycle: Record<string, unknown> = {};
  const top = deepCycle;
  for (let i = 0; i < 10_000; i++) deepCycle = (deepCycle.a = {}) as Record<string, unknown>;
  deepCycle.back = top;
  expect(() => stringifyJson(top)).toThrow(/circular/);
});
