/**
 * L1 coherence across instances: every write, delete and tag change is announced on a channel of the backend (Redis
 * pub/sub), and every other instance drops the affected L1 entries. After the subscriber (re)connects, messages may
 * have been lost, so listeners flush their whole L1.
 *
 * Backends without messages cannot do this; caches over them bound their L1 lifetime instead (see runtime options).
 */
import { randomUUID } from './random.js';
import { hasInvalidation, type Backend, type InvalidationCapable, type Subscription } from '../backends/types.js';

export interface CoherenceListener {
  /** Entries under `keys` changed elsewhere. */
  keys(keys: string[]): void;
  /** The states of `tags` changed elsewhere. */
  tags(tags: string[]): void;
  /** Messages may have been missed: drop everything local. */
  flush(): void;
}

interface Message {
  /** Origin instance: an instance ignores its own messages. */
  o: string;
  k?: string[];
  t?: string[];
}

export class CoherenceBus {
  /** This instance's id in messages. */
  readonly origin = randomUUID();
  readonly channel: string;
  readonly #backend: (Backend & InvalidationCapable) | null;
  readonly #listeners = new Set<CoherenceListener>();
  readonly #onError: (error: unknown, operation: string) => void;
  #subscription: Promise<Subscription | null> | null = null;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  /** Messages sent and received, for metrics and tests. */
  sent = 0;
  received = 0;

  constructor(backend: Backend | null, channel: string, onError: (error: unknown, operation: string) => void) {
    this.#backend = backend && hasInvalidation(backend) ? backend : null;
    this.channel = channel;
    this.#onError = onError;
  }

  /** Whether the backend carries messages at all. */
  get messaging(): boolean {
    return this.#backend !== null;
  }

  /**
   * Subscribes (once). Resolves when the subscription is live; listeners are flushed then, because anything cached
   * before it was unprotected. Resolves `false` when the backend has no messages or subscribing failed; after a
   * failure it retries every `retryMs` in the background and flushes the listeners at each attempt, so that until the
   * subscription is live no instance trusts its L1 for longer than that.
   */
  async start(retryMs = 1_000): Promise<boolean> {
    const backend = this.#backend;
    if (!backend || this.#stopped) return false;
    this.#subscription ??= backend
      .subscribe(
        this.channel,
        (raw) => this.#receive(raw),
        () => this.#flush(),
      )
      .then(
        (subscription) => {
          this.#flush();
          if (this.#stopped) void subscription.unsubscribe();
          return subscription;
        },
        (error: unknown) => {
          this.#onError(error, 'subscribe');
          this.#subscription = null;
          if (!this.#stopped) {
            this.#retry = setTimeout(() => {
              this.#flush();
              void this.start(retryMs);
            }, retryMs);
            this.#retry.unref?.();
          }
          return null;
        },
      );
    return (await this.#subscription) !== null;
  }

  listen(listener: CoherenceListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  announceKeys(keys: string[]): Promise<void> {
    return this.#publish({ o: this.origin, k: keys });
  }

  announceTags(tags: string[]): Promise<void> {
    return this.#publish({ o: this.origin, t: tags });
  }

  async #publish(message: Message): Promise<void> {
    const backend = this.#backend;
    if (!backend) return;
    try {
      await backend.publish(this.channel, JSON.stringify(message));
      this.sent++;
    } catch (error) {
      this.#onError(error, 'publish');
    }
  }

  #receive(raw: string): void {
    let message: Message;
    try {
      message = JSON.parse(raw) as Message;
    } catch {
      return; // not one of ours: someone else publishes on this channel
    }
    if (message.o === this.origin) return;
    this.received++;
    for (const listener of this.#listeners) {
      if (Array.isArray(message.k)) listener.keys(message.k);
      if (Array.isArray(message.t)) listener.tags(message.t);
    }
  }

  #flush(): void {
    for (const listener of this.#listeners) listener.flush();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    const subscription = await this.#subscription;
    this.#subscription = null;
    await subscription?.unsubscribe();
  }
}

const shared = new WeakMap<Backend, Map<string, CoherenceBus>>();

/**
 * One bus (one subscription) per backend object and channel in this process, for caches that come and go with
 * their wrappers (`cache(fn)`); started on first use.
 */
export function sharedBus(backend: Backend, channel: string, onError: (error: unknown, operation: string) => void): CoherenceBus {
  let buses = shared.get(backend);
  if (!buses) shared.set(backend, (buses = new Map()));
  let bus = buses.get(channel);
  if (!bus) buses.set(channel, (bus = new CoherenceBus(backend, channel, onError)));
  return bus;
}
