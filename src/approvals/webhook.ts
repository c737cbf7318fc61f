// Webhook announcements: a Slack-compatible JSON body `{ "text": ... }` POSTed for new requests and decisions.
//
// Best effort: a slow or failing webhook never blocks or changes a decision; failures go to stderr as one JSON line.
// The text never holds a secret; it names the request, the requester, the rule and what to run to decide it.

export interface WebhookOptions {
  readonly url: string;
  /** Milliseconds before the POST is abandoned (default 5000). */
  readonly timeoutMs?: number;
  readonly onError?: (message: string) => void;
}

export class Webhook {
  private readonly inFlight = new Set<Promise<void>>();
  constructor(private readonly opts: WebhookOptions) {}

  /** Sends `{ text }`; resolves when delivered or given up (never rejects). */
  announce(text: string): Promise<void> {
    const p = this.post(text).finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
    return p;
  }

  /** Waits for every announcement in flight (tests, shutdown). */
  async drain(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  private async post(text: string): Promise<void> {
    try {
      const res = await fetch(this.opts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text }),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) this.fail(`webhook answered HTTP ${res.status}`);
    } catch (e) {
      this.fail(`webhook failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private fail(message: string): void {
    if (this.opts.onError) this.opts.onError(message);
    else process.stderr.write(`${JSON.stringify({ level: 'warn', msg: message, component: 'approvals' })}\n`);
  }
}
