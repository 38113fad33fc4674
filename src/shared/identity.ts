/**
 * A stable number per object, for configuration signatures ("the same backend object", "the same stack"). Kept on
 * globalThis: every copy of this module in a process (Next bundles one per route) numbers objects alike.
 */
const IDS = Symbol.for('cachekit-next.objectIds');
type Holder = { [IDS]?: { ids: WeakMap<object, number>; next: number } };

export function objectId(value: object): string {
  const holder = globalThis as Holder;
  const table = (holder[IDS] ??= { ids: new WeakMap(), next: 1 });
  let id = table.ids.get(value);
  if (id === undefined) table.ids.set(value, (id = table.next++));
  return `#${id}`;
}
