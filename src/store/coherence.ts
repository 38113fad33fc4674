/**
 * L1 coherence across instances: every write, delete and tag change is announced on a channel of the backend (Redis
 * pub/sub), and every other instance drops the affected L1 entries. After the subscriber (re)connects, messages may
 * have been lost, so listeners flush their whole L1.
 *
 * Backends without messages get the same through the invalidation epoch (epoch.ts): announcements bump a counter in
 * the L2 with a journal of what changed, and an instance reads it once per request (`syncForRequest`, `synced`)
 * before it trusts its L1. Without either (`epoch: false`), caches bound their L1 lifetime instead.
 */
import { randomUUID } from '../shared/random.js';
import { singleton } from '../shared/registry.js';
import { hasInvalidation, type Backend, type InvalidationCapable, type Subscription } from '../protocol/backend.js';
import { Epoch, requestGeneration, type EpochOptions } from './epoch.js';
import { epochKey } from '../wire/keys.js';
import { L2Guard, type GuardedCall } from './l2-guard.js';
import { nowMs } from '../shared/clock.js';
import { record } from '../shared/telemetry.js';

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
  /** Sent at (epoch ms): receivers measure the invalidation lag. */
  s?: number;
}

export interface CoherenceOptions {
  /**
   * Over a backend without messages: the invalidation epoch, trusting local state at most `maxAgeMs` without reading
   * it (default 1000); `false` for none.
   */
  epoch?: false | Partial<Pick<EpochOptions, 'maxAgeMs'>>;
  /** Every L2 call of the bus (epoch reads and bumps, publish) goes through this. @default a 1500 ms deadline, no breaker */
  call?: GuardedCall;
}

const DEFAULT_EPOCH_MAX_AGE_MS = 1_000;
const DEFAULT_DEADLINE_MS = 1_500;

export class CoherenceBus {
  /** This instance's id in messages. */
  readonly origin = randomUUID();
  readonly channel: string;
  /** The invalidation epoch, over a backend without messages. */
  readonly epoch: Epoch | null;
  readonly #backend: (Backend & InvalidationCapable) | null;
  readonly #listeners = new Set<CoherenceListener>();
  readonly #onError: (error: unknown, operation: string) => void;
  readonly #call: GuardedCall;
  #subscription: Promise<Subscription | null> | null = null;
  #retry: ReturnType<typeof setTimeout> | undefined;
  /** The first subscribe attempt while it runs (going live flushes the L1: writers wait for it), then `undefined`. */
  #firstAttempt: Promise<void> | undefined;
  #attempted = false;
  /** Announcements of writes still on their way (announceWritten): stop() waits for them. */
  readonly #sending = new Set<Promise<void>>();
  #stopped = false;
  #live = false;
  /** Messages sent and received, for metrics and tests. */
  sent = 0;
  received = 0;

  constructor(backend: Backend | null, channel: string, onError: (error: unknown, operation: string) => void, options: CoherenceOptions = {}) {
    this.#backend = backend && hasInvalidation(backend) ? backend : null;
    this.channel = channel;
    this.#onError = onError;
    this.#call = options.call ?? new L2Guard({ backend, timeoutMs: DEFAULT_DEADLINE_MS, breaker: false }).run;
    const epoch = options.epoch ?? {};
    this.epoch =
      backend === null || this.#backend !== null || epoch === false
        ? null
        : new Epoch({
            backend,
            key: epochKey(channel),
            origin: this.origin,
            maxAgeMs: epoch.maxAgeMs ?? DEFAULT_EPOCH_MAX_AGE_MS,
            call: this.#call,
            onError,
            target: {
              keys: (keys) => this.#dispatch({ o: '', k: keys }),
              tags: (tags) => this.#dispatch({ o: '', t: tags }),
              flush: () => this.#flush(),
            },
          });
  }

  /** The invalidation channel: `none` (no messages), `live`, or `down` (not subscribed yet, or retrying). */
  get subscription(): 'none' | 'live' | 'down' {
    return this.#backend === null ? 'none' : this.#live ? 'live' : 'down';
  }

  /** Whether the backend carries messages at all. */
  get messaging(): boolean {
    return this.#backend !== null;
  }

  /** Whether announcements reach every instance: by message, or through the epoch at its next read. */
  get coherent(): boolean {
    return this.#backend !== null || this.epoch !== null;
  }

  /**
   * Before the first read of a request: the epoch read by a request that began after the last change it must see
   * (strict where requests are signalled, see epoch.ts `requestBegan`), shared by concurrent callers of one request.
   * Resolved at once with messages or without an epoch.
   */
  syncForRequest(): Promise<void> {
    const epoch = this.epoch;
    if (!epoch) return Promise.resolve();
    return requestGeneration() > 0 ? (epoch.synced() ?? Promise.resolve()) : epoch.sync();
  }

  /** Before a read outside a request's first one: `undefined` when local state can be trusted as it is. */
  synced(): Promise<void> | undefined {
    return this.epoch?.synced();
  }

  /**
   * Before a write: the epoch's first read, or the first subscribe attempt, while it runs (either flushes local state:
   * a copy made before it would be dropped right after), else `undefined`. Bounded: a subscribe attempt ends within
   * the backend's connect timeout, live or failed.
   */
  started(): Promise<void> | undefined {
    return this.epoch ? this.epoch.baseline() : this.#firstAttempt;
  }

  /** Before a read that follows a request's `syncForRequest`: only the age bound (`undefined`: nothing to wait for). */
  fresh(): Promise<void> | undefined {
    return this.epoch?.fresh();
  }

  /**
   * Subscribes (once). Resolves when the subscription is live; listeners are flushed then, because anything cached
   * before it was unprotected. Resolves `false` when the backend has no messages or subscribing failed; after a
   * failure it retries every `retryMs` in the background and flushes the listeners at each attempt, so that until the
   * subscription is live no instance trusts its L1 for longer than that.
   */
  async start(retryMs = 1_000): Promise<boolean> {
    const backend = this.#backend;
    if (this.epoch && !this.#stopped) {
      // The first read flushes the listeners (anything cached before it was unprotected) and sets the baseline.
      await this.epoch.sync();
      return this.epoch.stats.reads > 0;
    }
    if (!backend || this.#stopped) return false;
    const first = !this.#attempted;
    this.#attempted = true;
    this.#subscription ??= backend
      .subscribe(
        this.channel,
        (raw) => this.#receive(raw),
        () => this.#flush(),
      )
      .then(
        (subscription) => {
          this.#live = !this.#stopped;
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
    if (first) {
      const attempt = this.#subscription.then(() => {
        if (this.#firstAttempt === attempt) this.#firstAttempt = undefined;
      });
      this.#firstAttempt = attempt;
    }
    return (await this.#subscription) !== null;
  }

  listen(listener: CoherenceListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  announceKeys(keys: string[]): Promise<void> {
    if (this.epoch) return this.epoch.announce({ keys });
    return this.#publish({ o: this.origin, k: keys, s: nowMs() });
  }

  /**
   * After a write: announces `keys`, resolving when a reader elsewhere is sure to see the change. Over the epoch that is
   * once the bump is stored (a request another instance starts afterwards reads it). A message can give no such
   * promise (a subscriber handles it when it arrives, awaited or not): the write returns without waiting for the
   * PUBLISH round trip, which stop() drains. Failures are reported, never thrown.
   */
  announceWritten(keys: string[]): Promise<void> {
    if (this.epoch || !this.#backend) return this.announceKeys(keys);
    const sent = this.announceKeys(keys).finally(() => this.#sending.delete(sent));
    this.#sending.add(sent);
    return Promise.resolve();
  }

  announceTags(tags: string[]): Promise<void> {
    if (this.epoch) return this.epoch.announce({ tags });
    return this.#publish({ o: this.origin, t: tags, s: nowMs() });
  }

  async #publish(message: Message): Promise<void> {
    const backend = this.#backend;
    if (!backend) return;
    try {
      await this.#call('publish', () => backend.publish(this.channel, JSON.stringify(message)));
      this.sent++;
      record({ type: 'invalidation', direction: 'sent', lagMs: null });
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
    record({ type: 'invalidation', direction: 'received', lagMs: typeof message.s === 'number' ? Math.max(0, nowMs() - message.s) : null });
    this.#dispatch(message);
  }

  #dispatch(message: Message): void {
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
    this.#live = false;
    clearTimeout(this.#retry);
    await Promise.all(this.#sending);
    const subscription = await this.#subscription;
    this.#subscription = null;
    await subscription?.unsubscribe();
  }
}

/**
 * One bus (one subscription) per backend object and channel in this process, for caches that come and go with
 * their wrappers (`cache(fn)`); started on first use.
 */
export function sharedBus(
  backend: Backend,
  channel: string,
  onError: (error: unknown, operation: string) => void,
  options: CoherenceOptions = {},
): CoherenceBus {
  const shared = singleton('coherenceBuses', () => new WeakMap<Backend, Map<string, CoherenceBus>>());
  let buses = shared.get(backend);
  if (!buses) shared.set(backend, (buses = new Map()));
  let bus = buses.get(channel);
  if (!bus) buses.set(channel, (bus = new CoherenceBus(backend, channel, onError, options)));
  return bus;
}
