// Publish: a form for one channel, its payload prefilled from the AsyncAPI message's example or
// schema; the broker's answer (or its validation errors) shown under it.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, get, itemPath, request } from '../api.js';
import { channelByAddress, examplePayload, liveDocument, messagesOf, type Json } from '../asyncapi-doc.js';
import type { ChannelView } from '../../../src/core/admin/views.js';

interface Outcome {
  ok: boolean;
  text: string;
  errors: string[];
}

/** `a/b c/#` as a path under /v1/publish/: each level percent-encoded, the `/` kept. */
function publishPath(topic: string): string {
  return `/v1/publish/${topic.split('/').map(encodeURIComponent).join('/')}`;
}

export function PublishPage(props: { channel: string | undefined }) {
  const [topic, setTopic] = useState(props.channel ?? '');
  const [payload, setPayload] = useState('');
  const [contentType, setContentType] = useState('application/json');
  const [qos, setQos] = useState('1');
  const [retain, setRetain] = useState(false);
  const [messages, setMessages] = useState<Array<[string, Json]>>([]);
  const [hint, setHint] = useState('');
  const [outcome, setOutcome] = useState<Outcome>();
  const [busy, setBusy] = useState(false);

  // Prefill from the channel's declared message (or the one inferred from traffic).
  useEffect(() => {
    if (!props.channel) return;
    setTopic(props.channel);
    let gone = false;
    void (async () => {
      const [doc, channel] = await Promise.all([liveDocument(0), get<ChannelView>(itemPath('channels', props.channel!)).catch(() => undefined)]);
      if (gone) return;
      const found = channelByAddress(doc, channel?.declared ?? props.channel!) ?? channelByAddress(doc, props.channel!);
      if (!found) return setHint('No AsyncAPI channel describes this topic: any payload goes.');
      const list = messagesOf(doc, found[1]);
      setMessages(list);
      choose(list[0], doc);
      setHint(`Prefilled from the AsyncAPI channel ${found[0]} (${found[1].address as string}).`);
    })().catch((err: Error) => setHint(`The AsyncAPI document could not be read: ${err.message}`));
    return () => {
      gone = true;
    };
  }, [props.channel]);

  const choose = (entry: [string, Json] | undefined, doc?: Awaited<ReturnType<typeof liveDocument>>): void => {
    if (!entry) return;
    const [, message] = entry;
    const apply = (d: Awaited<ReturnType<typeof liveDocument>>): void => {
      const example = examplePayload(d, message);
      const type = (message.contentType as string | undefined) ?? (d as unknown as Json).defaultContentType ?? 'application/json';
      setContentType(String(type));
      setPayload(typeof example === 'string' && !String(type).includes('json') ? example : JSON.stringify(example, null, 2));
    };
    if (doc) apply(doc);
    else void liveDocument().then(apply);
  };

  const submit = async (): Promise<void> => {
    setBusy(true);
    setOutcome(undefined);
    try {
      const query = `?qos=${qos}${retain ? '&retain=true' : ''}`;
      const answer = await request<{ id: string; seq: number }>('POST', `${publishPath(topic)}${query}`, { body: payload, contentType });
      setOutcome({ ok: true, text: `Stored: seq ${answer.seq}, id ${answer.id}`, errors: [] });
    } catch (err) {
      if (err instanceof ApiError) setOutcome({ ok: false, text: `${err.status} ${err.code}: ${err.message}`, errors: err.errors });
      else setOutcome({ ok: false, text: err instanceof Error ? err.message : String(err), errors: [] });
    } finally {
      setBusy(false);
    }
  };

  let jsonProblem: string | undefined;
  if (contentType.includes('json') && payload.trim() !== '') {
    try {
      JSON.parse(payload);
    } catch (err) {
      jsonProblem = `Not valid JSON: ${(err as Error).message}`;
    }
  }

  return (
    <form
      class="card publish"
      data-testid="publish-form"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <label>
        Channel (topic)
        <input value={topic} required data-testid="publish-topic" placeholder="orders/42/created" onInput={(e) => setTopic((e.currentTarget as HTMLInputElement).value)} />
      </label>
      {hint ? <p class="muted small" data-testid="publish-hint">{hint}</p> : null}
      {messages.length > 1 ? (
        <label>
          Message
          <select onChange={(e) => choose(messages[Number((e.currentTarget as HTMLSelectElement).value)])}>
            {messages.map(([name, m], i) => (
              <option value={i}>{(m.name as string | undefined) ?? name}</option>
            ))}
          </select>
        </label>
      ) : null}
      <div class="row">
        <label>
          Content type
          <input value={contentType} data-testid="publish-content-type" onInput={(e) => setContentType((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <label>
          QoS
          <select value={qos} onChange={(e) => setQos((e.currentTarget as HTMLSelectElement).value)}>
            <option value="0">0</option>
            <option value="1">1</option>
            <option value="2">2</option>
          </select>
        </label>
        <label class="check">
          <input type="checkbox" checked={retain} onChange={(e) => setRetain((e.currentTarget as HTMLInputElement).checked)} /> retain
        </label>
      </div>
      <label>
        Payload
        <textarea rows={14} spellcheck={false} class="mono" data-testid="publish-payload" value={payload} onInput={(e) => setPayload((e.currentTarget as HTMLTextAreaElement).value)} />
      </label>
      {jsonProblem ? <p class="warn small">{jsonProblem}</p> : null}
      <button type="submit" disabled={busy || topic === ''} data-testid="publish-submit">
        Publish
      </button>
      {outcome ? (
        <div class={outcome.ok ? 'notice' : 'error'} data-testid="publish-outcome">
          <p>{outcome.text}</p>
          {outcome.errors.length > 0 ? (
            <ul data-testid="publish-errors">
              {outcome.errors.map((e) => (
                <li class="mono small">{e}</li>
              ))}
            </ul>
          ) : null}
        </div>
      ) : null}
    </form>
  );
}
