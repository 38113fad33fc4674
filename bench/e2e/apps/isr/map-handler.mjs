// The floor for any custom cache handler: entries in a module-level Map, no I/O, no encoding, no tags. What a request
// costs with it is what Next itself spends on a custom `cacheHandler` (it imports the handler module and builds an
// IncrementalCache on every request, which its built-in cache does not), so a handler can be compared with it.
const entries = new Map();

export default class MapHandler {
  async get(key) {
    return entries.get(key) ?? null;
  }

  async set(key, data) {
    entries.set(key, { value: data, lastModified: Date.now() });
  }

  async revalidateTag() {
    entries.clear();
  }

  resetRequestCache() {}
}
