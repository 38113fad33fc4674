/**
 * A stable number per object, for configuration signatures ("the same backend object", "the same stack"). Kept in the
 * process registry: every copy of this module in a process (Next bundles one per route) numbers objects alike.
 */
import { singleton } from './registry.js';

export function objectId(value: object): string {
  const table = singleton('objectIds', () => ({ ids: new WeakMap<object, number>(), next: 1 }));
  let id = table.ids.get(value);
  if (id === undefined) table.ids.set(value, (id = table.next++));
  return `#${id}`;
}
