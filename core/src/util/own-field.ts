/**
 * Sets `target[key]` as an own, enumerable, writable data property, whatever the key. A plain
 * assignment (or an object literal key) named `__proto__` sets the object's prototype instead,
 * so a column, record field or JSON key of that name vanished (or became an inherited property
 * that `JSON.stringify` and `Object.keys` skip). Other keys are simply assigned.
 */
export function setOwnField<T>(target: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}
