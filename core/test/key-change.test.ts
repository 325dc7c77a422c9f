import { describe, expect, it } from 'vitest';
import { movedFromKey } from '@tributary/core';

describe('movedFromKey', () => {
  const pk = [['id']];
  it('gives the before-image of an update that changed the primary key', () => {
    expect(movedFromKey({ _tributary_op: 'u', id: 33, v: 1, _tributary_before: { id: 4 } }, pk)).toEqual({ id: 4 });
    expect(movedFromKey({ _tributary_op: 'u', id: '33', _tributary_before: { id: 33 } }, pk)).toEqual({ id: 33 }); // "33" and 33 are different keys
    expect(movedFromKey({ _tributary_op: 'u', a: 1, b: 2, _tributary_before: { a: 1, b: 3 } }, [['a'], ['b']])).toEqual({ a: 1, b: 3 });
    expect(movedFromKey({ _tributary_op: 'u', m: { id: 2 }, _tributary_before: { m: { id: 1 } } }, [['m', 'id']])).toEqual({ m: { id: 1 } });
  });
  it('is undefined for other records', () => {
    expect(movedFromKey({ _tributary_op: 'u', id: 4, v: 2, _tributary_before: { id: 4, v: 1 } }, pk)).toBeUndefined(); // same key (FULL identity)
    expect(movedFromKey({ _tributary_op: 'u', id: 4, _tributary_before: null }, pk)).toBeUndefined();
    expect(movedFromKey({ _tributary_op: 'd', id: 4, _tributary_before: { id: 5 } }, pk)).toBeUndefined();
    expect(movedFromKey({ _tributary_op: 'c', id: 4, _tributary_before: { id: 5 } }, pk)).toBeUndefined();
    expect(movedFromKey({ id: 4, _tributary_before: { id: 5 } }, pk)).toBeUndefined();
    expect(movedFromKey({ _tributary_op: 'u', id: 4, _tributary_before: { v: 1 } }, pk)).toBeUndefined(); // no old key in the image
    expect(movedFromKey({ _tributary_op: 'u', id: 4, _tributary_before: { id: 5 } }, [])).toBeUndefined();
  });
});
