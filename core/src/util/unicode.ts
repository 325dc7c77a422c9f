/**
 * An unpaired UTF-16 surrogate: a high one not followed by a low one, or a low one not
 * after a high one. JavaScript strings may hold them; UTF-8 (Parquet, Redis, PostgreSQL,
 * files) cannot, and converters replace each with U+FFFD.
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

/** Whether `text` holds an unpaired UTF-16 surrogate (so UTF-8 would not carry it unchanged). */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

/** `text` with each unpaired UTF-16 surrogate replaced by U+FFFD, as a UTF-8 conversion replaces it. */
export function replaceLoneSurrogates(text: string): string {
  return text.replace(LONE_SURROGATES, '\ufffd');
}
