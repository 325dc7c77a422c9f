/**
 * The subset of SOQL the simulator understands — exactly what the connector sends, plus a
 * little room: `SELECT f, … | COUNT() FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC], …]
 * [LIMIT n]`, where `cond` combines comparisons (`= != <> < <= > >=`), `IN (…)` and
 * `NOT IN (…)` with AND / OR / NOT and parentheses. Literals: 'strings' (with \' escapes),
 * numbers, true / false / null, date-times (`2024-01-01T00:00:00Z`, `…000+0000`) and dates.
 * Anything else is a MALFORMED_QUERY, as Salesforce would answer.
 */

import { JsonNumber, canonicalDecimal, compareDecimals, fitsDouble } from '../client/json.js';

/** Numbers a double cannot hold digit for digit are JsonNumbers of their exact decimal. */
export type Literal = string | number | JsonNumber | boolean | null | { dateTime: number } | { date: string };

export type Condition =
  | { kind: 'and' | 'or'; left: Condition; right: Condition }
  | { kind: 'not'; inner: Condition }
  | { kind: 'compare'; field: string; op: '=' | '!=' | '<' | '<=' | '>' | '>='; value: Literal }
  | { kind: 'in'; field: string; negated: boolean; values: Literal[] };

export interface OrderTerm {
  field: string;
  descending: boolean;
}

export interface SoqlQuery {
  /** Selected field names as written; empty for `COUNT()`. */
  fields: string[];
  count: boolean;
  object: string;
  where?: Condition;
  orderBy: OrderTerm[];
  limit?: number;
}

export class SoqlError extends Error {}

type Token = { type: 'word' | 'string' | 'number' | 'op' | 'punct' | 'datetime' | 'date'; text: string };

const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})/;
const DATE = /^\d{4}-\d{2}-\d{2}/;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const rest = text.slice(i);
    const ch = text[i]!;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const dt = DATETIME.exec(rest);
    if (dt) {
      tokens.push({ type: 'datetime', text: dt[0] });
      i += dt[0].length;
      continue;
    }
    const d = DATE.exec(rest);
    if (d) {
      tokens.push({ type: 'date', text: d[0] });
      i += d[0].length;
      continue;
    }
    if (ch === "'") {
      let value = '';
      let j = i + 1;
      for (; j < text.length && text[j] !== "'"; j++) {
        if (text[j] === '\\' && j + 1 < text.length) {
          j++;
          const escaped = text[j]!;
          value += escaped === 'n' ? '\n' : escaped === 't' ? '\t' : escaped;
        } else value += text[j];
      }
      if (j >= text.length) throw new SoqlError('unterminated string literal');
      tokens.push({ type: 'string', text: value });
      i = j + 1;
      continue;
    }
    const num = /^-?\d+(\.\d+)?/.exec(rest);
    if (num) {
      tokens.push({ type: 'number', text: num[0] });
      i += num[0].length;
      continue;
    }
    const op = /^(<=|>=|!=|<>|=|<|>)/.exec(rest);
    if (op) {
      tokens.push({ type: 'op', text: op[0] === '<>' ? '!=' : op[0] });
      i += op[0].length;
      continue;
    }
    if ('(),'.includes(ch)) {
      tokens.push({ type: 'punct', text: ch });
      i++;
      continue;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(rest);
    if (word) {
      tokens.push({ type: 'word', text: word[0] });
      i += word[0].length;
      continue;
    }
    throw new SoqlError(`unexpected character '${ch}'`);
  }
  return tokens;
}

class Parser {
  private position = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token | undefined {
    return this.tokens[this.position];
  }

  private next(): Token {
    const token = this.tokens[this.position++];
    if (!token) throw new SoqlError('unexpected end of query');
    return token;
  }

  private isKeyword(word: string): boolean {
    const token = this.peek();
    return token?.type === 'word' && token.text.toUpperCase() === word;
  }

  private keyword(word: string): void {
    const token = this.next();
    if (token.type !== 'word' || token.text.toUpperCase() !== word) throw new SoqlError(`expected ${word}, found '${token.text}'`);
  }

  private punct(text: string): void {
    const token = this.next();
    if (token.type !== 'punct' || token.text !== text) throw new SoqlError(`expected '${text}', found '${token.text}'`);
  }

  private identifier(): string {
    const token = this.next();
    if (token.type !== 'word') throw new SoqlError(`expected a field name, found '${token.text}'`);
    return token.text;
  }

  parse(): SoqlQuery {
    this.keyword('SELECT');
    const fields: string[] = [];
    let count = false;
    if (this.isKeyword('COUNT')) {
      this.next();
      this.punct('(');
      this.punct(')');
      count = true;
    } else {
      for (;;) {
        fields.push(this.identifier());
        if (this.peek()?.text !== ',') break;
        this.next();
      }
    }
    this.keyword('FROM');
    const object = this.identifier();
    const query: SoqlQuery = { fields, count, object, orderBy: [] };
    if (this.isKeyword('WHERE')) {
      this.next();
      query.where = this.orExpression();
    }
    if (this.isKeyword('ORDER')) {
      this.next();
      this.keyword('BY');
      for (;;) {
        const field = this.identifier();
        let descending = false;
        if (this.isKeyword('ASC')) this.next();
        else if (this.isKeyword('DESC')) {
          this.next();
          descending = true;
        }
        query.orderBy.push({ field, descending });
        if (this.peek()?.text !== ',') break;
        this.next();
      }
    }
    if (this.isKeyword('LIMIT')) {
      this.next();
      const token = this.next();
      if (token.type !== 'number' || !Number.isInteger(Number(token.text)) || Number(token.text) < 0) throw new SoqlError('LIMIT needs a whole number');
      query.limit = Number(token.text);
    }
    if (this.peek()) throw new SoqlError(`unexpected token '${this.peek()!.text}'`);
    return query;
  }

  private orExpression(): Condition {
    let left = this.andExpression();
    while (this.isKeyword('OR')) {
      this.next();
      left = { kind: 'or', left, right: this.andExpression() };
    }
    return left;
  }

  private andExpression(): Condition {
    let left = this.unary();
    while (this.isKeyword('AND')) {
      this.next();
      left = { kind: 'and', left, right: this.unary() };
    }
    return left;
  }

  private unary(): Condition {
    if (this.isKeyword('NOT')) {
      this.next();
      return { kind: 'not', inner: this.unary() };
    }
    if (this.peek()?.text === '(') {
      this.next();
      const inner = this.orExpression();
      this.punct(')');
      return inner;
    }
    const field = this.identifier();
    if (this.isKeyword('IN') || this.isKeyword('NOT')) {
      const negated = this.next().text.toUpperCase() === 'NOT';
      if (negated) this.keyword('IN');
      this.punct('(');
      const values: Literal[] = [];
      for (;;) {
        values.push(this.literal());
        const token = this.next();
        if (token.text === ')') break;
        if (token.text !== ',') throw new SoqlError(`expected ',' or ')' in IN list, found '${token.text}'`);
      }
      return { kind: 'in', field, negated, values };
    }
    const op = this.next();
    if (op.type !== 'op') throw new SoqlError(`expected an operator after ${field}, found '${op.text}'`);
    return { kind: 'compare', field, op: op.text as '=' | '!=' | '<' | '<=' | '>' | '>=', value: this.literal() };
  }

  private literal(): Literal {
    const token = this.next();
    switch (token.type) {
      case 'string':
        return token.text;
      case 'number':
        return fitsDouble(token.text) ? Number(token.text) : new JsonNumber(canonicalDecimal(token.text) ?? token.text);
      case 'datetime': {
        const ms = Date.parse(token.text.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
        if (!Number.isFinite(ms)) throw new SoqlError(`invalid date-time literal ${token.text}`);
        return { dateTime: ms };
      }
      case 'date':
        return { date: token.text };
      case 'word': {
        const word = token.text.toLowerCase();
        if (word === 'true') return true;
        if (word === 'false') return false;
        if (word === 'null') return null;
        throw new SoqlError(`unexpected '${token.text}' where a value was expected`);
      }
      default:
        throw new SoqlError(`unexpected '${token.text}' where a value was expected`);
    }
  }
}

export function parseSoql(text: string): SoqlQuery {
  return new Parser(tokenize(text)).parse();
}

/** Every field a condition names. */
export function conditionFields(condition: Condition | undefined): string[] {
  if (!condition) return [];
  switch (condition.kind) {
    case 'and':
    case 'or':
      return [...conditionFields(condition.left), ...conditionFields(condition.right)];
    case 'not':
      return conditionFields(condition.inner);
    default:
      return [condition.field];
  }
}

/** Values as the evaluator compares them: date-times in ms, everything else as stored. */
function literalValue(literal: Literal): unknown {
  if (literal instanceof JsonNumber) return literal;
  if (literal !== null && typeof literal === 'object') return 'dateTime' in literal ? literal.dateTime : literal.date;
  return literal;
}

export function compareValues(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  // Integers past a double's digits (JsonNumber) compare as the decimals they are.
  if ((typeof a === 'number' || a instanceof JsonNumber) && (typeof b === 'number' || b instanceof JsonNumber)) return compareDecimals(String(a), String(b));
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Whether two values are equal, strings compared without case when `foldCase`. */
function equalValues(a: unknown, b: unknown, foldCase: boolean): boolean {
  if (foldCase && typeof a === 'string' && typeof b === 'string') return a.toLowerCase() === b.toLowerCase();
  return compareValues(a, b) === 0;
}

/**
 * Evaluates `condition` on a row; `valueOf` resolves a field name (any case) to the row's
 * value. `foldsCase(field)` tells whether equality on the field ignores case: in SOQL, `=`,
 * `!=` and `IN` on strings are case-insensitive except for unique case-sensitive fields.
 */
export function evaluate(condition: Condition | undefined, valueOf: (field: string) => unknown, foldsCase: (field: string) => boolean = () => false): boolean {
  if (!condition) return true;
  switch (condition.kind) {
    case 'and':
      return evaluate(condition.left, valueOf, foldsCase) && evaluate(condition.right, valueOf, foldsCase);
    case 'or':
      return evaluate(condition.left, valueOf, foldsCase) || evaluate(condition.right, valueOf, foldsCase);
    case 'not':
      return !evaluate(condition.inner, valueOf, foldsCase);
    case 'in': {
      const value = valueOf(condition.field);
      const fold = foldsCase(condition.field);
      const found = condition.values.some((v) => equalValues(value ?? null, literalValue(v), fold));
      return condition.negated ? !found : found;
    }
    case 'compare': {
      const value = valueOf(condition.field) ?? null;
      const literal = literalValue(condition.value);
      if (literal === null || value === null) {
        const equal = literal === value;
        return condition.op === '=' ? equal : condition.op === '!=' ? !equal : false;
      }
      if (condition.op === '=' || condition.op === '!=') {
        const equal = equalValues(value, literal, foldsCase(condition.field));
        return condition.op === '=' ? equal : !equal;
      }
      const c = compareValues(value, literal);
      switch (condition.op) {
        case '<':
          return c < 0;
        case '<=':
          return c <= 0;
        case '>':
          return c > 0;
        case '>=':
          return c >= 0;
      }
    }
  }
}
