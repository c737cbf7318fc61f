// The stable statement hook sessions hold: it reads the current inner hook once per statement, and a new policy replaces it by one reference swap.
//
// Life of an activation: the new inner hook is built completely (policy compiled, caches empty) elsewhere, then
// `swap()` replaces the reference in one synchronous step. A statement whose check started before the swap is
// decided, recorded and followed up (outcome) by the old inner hook; every check that starts after it by the new.
// INVARIANT: one statement is decided by exactly one inner hook, read once: never half the old policy and half
// the new one.

import type {
  BindRequest,
  StatementHook,
  StatementOutcome,
  StatementRequest,
  StatementVerdict,
} from '../core/context.js';

/** One policy generation: the hook statements go through, and what it is (shown to operators, recorded). */
export interface HookGeneration<T> {
  readonly hook: StatementHook;
  readonly info: T;
}

export class SwappableHook<T> implements StatementHook {
  private gen: HookGeneration<T>;
  /** Which inner hook decided a verdict, so its outcome reaches that hook (weak: verdicts are not retained). */
  private readonly decidedBy = new WeakMap<StatementVerdict, StatementHook>();
  private swaps = 0;

  constructor(initial: HookGeneration<T>) {
    this.gen = initial;
  }

  /** The generation new statements are decided by. */
  get current(): HookGeneration<T> {
    return this.gen;
  }

  /** How many times the inner hook was replaced. */
  get generation(): number {
    return this.swaps;
  }

  /** Makes `next` the hook of every statement that starts from now on; returns the one it replaces. */
  swap(next: HookGeneration<T>): HookGeneration<T> {
    const previous = this.gen;
    this.gen = next;
    this.swaps++;
    return previous;
  }

  check(request: StatementRequest): Promise<StatementVerdict> | StatementVerdict {
    // INVARIANT: the current generation is read exactly once per statement.
    const inner = this.gen.hook;
    const v = inner.check(request);
    if (v instanceof Promise) {
      return v.then((verdict) => {
        this.decidedBy.set(verdict, inner);
        return verdict;
      });
    }
    this.decidedBy.set(v, inner);
    return v;
  }

  /** Binds go to the current generation (its audit wrapper records the parameters' hash). */
  bind(request: BindRequest): Promise<StatementVerdict | undefined> | StatementVerdict | undefined {
    return this.gen.hook.bind?.(request);
  }

  outcome(o: StatementOutcome): void {
    (this.decidedBy.get(o.verdict) ?? this.gen.hook).outcome?.(o);
  }

  sessionClosed(sessionId: string): void {
    this.gen.hook.sessionClosed?.(sessionId);
  }
}
