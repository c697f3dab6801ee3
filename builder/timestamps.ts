// The times a build writes, with SOURCE_DATE_EPOCH's rules in one place.
import type { HistoryEntry, LayerEntry } from '../layers/index.ts';

export class Timestamps {
  /** Seconds since the epoch (SOURCE_DATE_EPOCH or --timestamp), when set. */
  readonly epoch: number | undefined;

  constructor(epoch: number | undefined) {
    this.epoch = epoch;
  }

  /** The time for `created` and history entries: the epoch when set, else now. */
  now(): string {
    return new Date(this.epoch !== undefined ? this.epoch * 1000 : Date.now()).toISOString();
  }

  /** The mtime of directories a build creates: the epoch when set, else 0, for determinism. */
  get createdDirMtime(): number {
    return this.epoch ?? 0;
  }

  /** What a layer's content depends on besides its instruction, for cache keys. */
  cacheInputs(): Record<string, string> {
    return this.epoch !== undefined ? { timestamp: String(this.epoch) } : {};
  }

  /** With an epoch, no mtime in a layer is later than it. */
  clamp(entries: LayerEntry[]): LayerEntry[] {
    const epoch = this.epoch;
    return epoch === undefined ? entries : entries.map((entry) => (entry.mtime > epoch ? { ...entry, mtime: epoch } : entry));
  }

  /**
   * Times for the history entries from `start` on that have none, as BuildKit gives them: the time
   * of the step before that made a layer, else of the first one after, else the base image's last.
   * A rebuild from the cache therefore gives the same config, and the same image digest. With an
   * epoch, every entry gets it.
   */
  fillCreated(history: HistoryEntry[], start: number): void {
    const own = history.slice(start);
    const firstTimed = own.find((entry) => entry.created)?.created;
    let previous = history[start - 1]?.created;
    let seenTimed = false;
    for (const entry of own) {
      if (this.epoch !== undefined) entry.created = this.now();
      else if (entry.created) [previous, seenTimed] = [entry.created, true];
      else entry.created = (seenTimed ? previous : firstTimed ?? previous) ?? this.now();
    }
  }
}
