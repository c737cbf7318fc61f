// Maps the BackendKeyData Warden hands to clients onto live sessions, so a CancelRequest reaches the right upstream backend.

import { randomInt } from 'node:crypto';
import { constantTimeEqual } from '../core/secrets.js';

export interface Cancellable {
  cancel(): void;
}

interface Key {
  readonly secret: number;
  readonly session: Cancellable;
}

export class CancelRegistry {
  private readonly keys = new Map<number, Key>();

  /** Issues a fresh (pid, secret) pair for a session. The pid is Warden's own, never the upstream's. */
  issue(session: Cancellable): { pid: number; secret: number } {
    let pid: number;
    do pid = randomInt(1, 0x7fffffff);
    while (this.keys.has(pid));
    const secret = randomInt(-0x80000000, 0x7fffffff);
    this.keys.set(pid, { secret, session });
    return { pid, secret };
  }

  release(pid: number): void {
    this.keys.delete(pid);
  }

  /** Cancels the session owning the key; a key Warden does not know is dropped silently. */
  cancel(pid: number, secret: number): boolean {
    const k = this.keys.get(pid);
    const a = Buffer.alloc(4);
    a.writeInt32BE(secret);
    const b = Buffer.alloc(4);
    b.writeInt32BE(k?.secret ?? ~secret);
    if (!k || !constantTimeEqual(a, b)) return false;
    k.session.cancel();
    return true;
  }

  get size(): number {
    return this.keys.size;
  }
}
