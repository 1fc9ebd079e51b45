/** One Server-Sent Event as the stream carried it. */
export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
  /** Comment lines (`: …`, without the colon and one space) that came in the event's block. */
  comments: string[];
}

/**
 * A Server-Sent Events client over fetch that parses the stream itself (as the HTML spec's
 * event-stream interpretation says), so a test sees ids, event names, data and comments.
 */
export class SseClient {
  readonly events: SseEvent[] = [];
  /** Every comment line seen, in order (`connected`, `ping`, `base64`…). */
  readonly comments: string[] = [];
  private waiters: Array<() => void> = [];
  private ended = false;

  private constructor(
    readonly response: Response,
    private readonly abort: AbortController,
  ) {}

  /** Opens a stream; rejects with the status and body when the answer is not a 200 event stream. */
  static async open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const abort = new AbortController();
    const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
    if (response.status !== 200) throw new Error(`${response.status} ${await response.text()}`);
    const client = new SseClient(response, abort);
    void client.read();
    return client;
  }

  /** Resolves with the first `n` events, or rejects after the timeout saying what came. */
  async take(n: number, timeoutMs = 5000): Promise<SseEvent[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length < n) {
      if (this.ended) throw new Error(`stream ended after ${this.events.length} of ${n} events`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${n} events, got ${this.events.length}: ${this.events.map((e) => e.data).join(', ')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.events.slice(0, n);
  }

  /** Ends the stream from the client's side, as a closed browser tab does. */
  close(): void {
    this.abort.abort();
  }

  private async read(): Promise<void> {
    const decoder = new TextDecoder();
    const reader = this.response.body!.getReader();
    let buffered = '';
    let block: SseEvent = emptyEvent();
    let data: string[] = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        const lines = buffered.split(/\r\n|\r|\n/);
        buffered = lines.pop()!;
        for (const line of lines) {
          if (line === '') {
            // A blank line dispatches the event, if it had data (a block of comments only is no event).
            if (data.length > 0) this.events.push({ ...block, data: data.join('\n') });
            block = emptyEvent();
            data = [];
            continue;
          }
          const colon = line.indexOf(':');
          const field = colon === -1 ? line : line.slice(0, colon);
          let value = colon === -1 ? '' : line.slice(colon + 1);
          if (value.startsWith(' ')) value = value.slice(1);
          if (field === '') {
            block.comments.push(value);
            this.comments.push(value);
          } else if (field === 'id') block.id = value;
          else if (field === 'event') block.event = value;
          else if (field === 'data') data.push(value);
        }
        this.wake();
      }
    } catch {
      // aborted by close()
    } finally {
      this.ended = true;
      this.wake();
    }
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}

function emptyEvent(): SseEvent {
  return { id: undefined, event: 'message', data: '', comments: [] };
}
