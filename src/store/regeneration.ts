/**
 * One regeneration per stale entry across the fleet. Next dedupes regenerations inside one process only: when a page
 * goes stale, every instance that gets a request for it renders it again. With a backend that has locks (Redis,
 * CachekitIO, File), the first instance to see the stale entry takes a short lease under the entry's key and is told
 * "regenerate" (the handler hands Next the entry as stale); the others are told "someone is on it" and serve the
 * entry as fresh until the new one arrives (its announcement drops their L1 copy) or the lease ends. A lease is per
 * version of the entry and is never released early: it lapses in the store. Writing the new version ends the need for
 * it, but not at once everywhere: an instance that has not yet handled the new version's announcement still holds the
 * old one in its L1, and would take a freed lease and regenerate that version a second time. Without locks, or when
 * the lock call fails, every instance regenerates as before: a lease can only save work, never withhold it.
 *
 * An entry that expired (a hard `revalidateTag`, Next's default) cannot be served while it regenerates: there the
 * holder gets the miss and renders, and the others wait up to `waitMs` for its new entry (handler-core.ts,
 * `awaitRegeneration`) instead of each rendering it again; past that they render themselves.
 */
import { hasLocks, type Backend, type LockCapable } from '../protocol/backend.js';
import { nowMs } from '../shared/clock.js';
import type { L2Guard } from './l2-guard.js';

/** How long one instance may take to regenerate before another takes over. */
export const DEFAULT_REGENERATION_LEASE_MS = 15_000;
/** How long an instance waits for another's regeneration of an expired entry before it renders itself. */
export const DEFAULT_REGENERATION_WAIT_MS = 5_000;
/** After a refused claim, this process does not ask the store again for this long (the holder is rendering). */
const DENIED_MEMO_MS = 250;
/** Above this many remembered keys, expired memos and leases are swept. */
const SWEEP_AT = 1_000;

export interface RegenerationLeasesOptions {
  backend: Backend | null;
  /** The stack's L2 guard: lock calls get its deadline and breaker, and their faults its reports. */
  guard: Pick<L2Guard, 'call' | 'report'>;
  /** Lease length; `0` turns fleet-wide single regeneration off. @default 15000 */
  leaseMs?: number;
  /** How long an instance waits for another's regeneration of an expired entry; `0`: it renders at once. @default 5000 */
  waitMs?: number;
}

export class RegenerationLeases {
  readonly #locks: (Backend & LockCapable) | null;
  readonly #guard: Pick<L2Guard, 'call' | 'report'>;
  readonly #leaseMs: number;
  /** How long to wait for another instance's regeneration of an expired entry, in ms (0 without locks). */
  readonly waitMs: number;
  /** Leases this process holds: store key -> the lease's key (one per version of the entry), when it lapses. */
  readonly #held = new Map<string, { lease: string; until: number }>();
  /** Claims refused recently: lease key -> until when not to ask again. */
  readonly #denied = new Map<string, number>();

  constructor(options: RegenerationLeasesOptions) {
    const leaseMs = options.leaseMs ?? DEFAULT_REGENERATION_LEASE_MS;
    this.#locks = leaseMs > 0 && options.backend && hasLocks(options.backend) ? options.backend : null;
    this.#guard = options.guard;
    this.#leaseMs = leaseMs;
    this.waitMs = this.#locks ? Math.min(options.waitMs ?? DEFAULT_REGENERATION_WAIT_MS, leaseMs) : 0;
  }

  /** Whether leases are taken at all (a backend with locks, a positive lease). */
  get active(): boolean {
    return this.#locks !== null;
  }

  /**
   * `true`: this instance regenerates the entry under `storeKey` written at `writtenAt` (serve it as stale, or answer
   * the miss); `false`: another instance holds the lease (serve it as fresh, or wait). `true` without locks, and when
   * the store cannot be asked. A lease is per version of the entry: one taken for an older version (its holder never
   * stored, or another instance did) does not hold back the regeneration of a newer one.
   */
  async claim(storeKey: string, writtenAt: number): Promise<boolean> {
    const locks = this.#locks;
    if (!locks) return true;
    const now = nowMs();
    const lease = leaseKey(storeKey, writtenAt);
    const held = this.#held.get(storeKey);
    // This process already regenerates this version (Next dedupes the render here): later requests serve it as fresh.
    if (held && held.until > now && held.lease === lease) return false;
    const denied = this.#denied.get(lease);
    if (denied !== undefined && denied > now) return false;
    let token: string | null;
    try {
      token = await this.#guard.call('acquireLock', () => locks.acquireLock(lease, this.#leaseMs));
    } catch (error) {
      this.#guard.report(error, 'acquireLock', storeKey);
      return true; // regenerating here is always safe
    }
    if (this.#held.size + this.#denied.size > SWEEP_AT) this.#sweep(now);
    if (token === null) {
      this.#denied.set(lease, now + Math.min(DENIED_MEMO_MS, this.#leaseMs));
      return false;
    }
    // An older version's lease we held is left to lapse, like any other (see the header).
    this.#held.set(storeKey, { lease, until: now + this.#leaseMs });
    return true;
  }

  /**
   * A new entry under `storeKey` was written: this process is done regenerating the version it held a lease on, and
   * the next staleness (a new version, so a new lease key) elects an instance afresh. The lease itself is not released
   * (see the header).
   */
  written(storeKey: string): void {
    this.#held.delete(storeKey);
  }

  #sweep(now: number): void {
    for (const [key, held] of this.#held) if (held.until <= now) this.#held.delete(key);
    for (const [key, until] of this.#denied) if (until <= now) this.#denied.delete(key);
  }
}

/**
 * The lease of one version of an entry (`writtenAt`, its write time): beside its key, so a Redis Cluster keeps both in
 * one slot when the key has a hash tag.
 */
function leaseKey(storeKey: string, writtenAt: number): string {
  return `${storeKey}:regen:${writtenAt}`;
}
