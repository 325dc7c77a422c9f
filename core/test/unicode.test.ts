import { expect, it } from 'vitest';
import { hasLoneSurrogate, replaceLoneSurrogates } from '../src/index.js';

it('finds and replaces unpaired UTF-16 surrogates only; a surrogate pair is one character and stays', () => {
  const cases: Array<[string, boolean, string]> = [
    ['plain é 中', false, 'plain é 中'],
    ['pair 😀', false, 'pair 😀'],
    ['high \ud800 alone', true, 'high \ufffd alone'],
    ['low \udc00 alone', true, 'low \ufffd alone'],
    ['reversed \udc00\ud800', true, 'reversed \ufffd\ufffd'],
    ['at the end \ud83d', true, 'at the end \ufffd'],
    ['\udfff at the start, then a pair 😀', true, '\ufffd at the start, then a pair 😀'],
  ];
  for (const [text, lone, replaced] of cases) {
    expect(hasLoneSurrogate(text), text).toBe(lone);
    expect(replaceLoneSurrogates(text)).toBe(replaced);
    // What a UTF-8 round trip gives: the replacement is the one encoders make.
    expect(Buffer.from(text, 'utf8').toString('utf8')).toBe(replaced);
  }
});
