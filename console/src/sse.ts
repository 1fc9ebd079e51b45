// A Server-Sent Events parser (the WHATWG event-stream format) fed text as it arrives.

export interface SseEvent {
  event: string;
  data: string;
  id: string | undefined;
  /** Comment lines of the event (`: base64` marks a binary payload on /v1/subscribe). */
  comments: string[];
}

/** Returns a function to feed chunks to; complete events go to `onEvent`. */
export function parseSse(onEvent: (event: SseEvent) => void): (chunk: string) => void {
  let buffer = '';
  let data: string[] = [];
  let event = '';
  let id: string | undefined;
  let comments: string[] = [];
  const line = (text: string): void => {
    if (text === '') {
      if (data.length > 0) onEvent({ event: event || 'message', data: data.join('\n'), id, comments });
      data = [];
      event = '';
      id = undefined;
      comments = [];
      return;
    }
    if (text.startsWith(':')) return void comments.push(text.slice(1).trim());
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id') id = value;
  };
  return (chunk) => {
    buffer += chunk;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(buffer);
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (!match || (match[0] === '\r' && match.index === buffer.length - 1)) return;
      line(buffer.slice(0, match.index));
      buffer = buffer.slice(match.index + match[0].length);
    }
  };
}
