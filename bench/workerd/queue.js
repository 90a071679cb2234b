// One queue, as workerd's queue producer binding speaks to it (workerd src/workerd/api/queue.c++):
//   POST https://fake-host/message  one message, body = the serialized message, X-Msg-Fmt = content type
//   POST https://fake-host/batch    {"messages": [{"body": base64, "contentType": "json"|..., "delaySecs"?}]}
// both answered 200 with {"metadata": {"metrics": {...}}} (parsed into SendResponse/SendBatchResponse).
// Accepted messages are counted; with a CONSUMER service binding they are delivered in batches of
// MAX_BATCH_SIZE (or after MAX_BATCH_TIMEOUT_MS) through `CONSUMER.queue(QUEUE_NAME, messages)` —
// the consumer Worker's queue() handler, reached through a service binding with the (experimental)
// compatibility flag `service_binding_extra_handlers`. Retried messages come back after their delay
// with attempts + 1; after MAX_RETRIES retries they go to the DLQ binding (another of these), if any.
// A request with `x-bench-control: stats` answers the counters.
const pending = []; // {id, timestamp, body, attempts, contentType}
const stats = { sent: 0, batches_in: 0, delivered: 0, batches_out: 0, acked: 0, retried: 0, dead_lettered: 0, consumer_errors: 0 };
let timer = null;
let seq = 0;

function decode(m) {
  const bytes = Uint8Array.from(atob(m.body), (c) => c.charCodeAt(0));
  const type = m.contentType || "v8";
  if (type === "json") return { body: JSON.parse(new TextDecoder().decode(bytes)) };
  if (type === "text") return { body: new TextDecoder().decode(bytes) };
  if (type === "bytes") return { body: bytes.buffer };
  return { serializedBody: bytes };
}

function accept(env, ctx, items) {
  for (const m of items) {
    pending.push({ id: `msg-${++seq}`, timestamp: new Date(), attempts: 1, raw: m, ...decode(m) });
    stats.sent++;
  }
  if (env.CONSUMER) schedule(env, ctx);
}

function schedule(env, ctx) {
  const size = Number(env.MAX_BATCH_SIZE || 10);
  if (pending.length >= size) ctx.waitUntil(flush(env));
  else if (!timer) {
    timer = scheduler.wait(Number(env.MAX_BATCH_TIMEOUT_MS || 1000)).then(() => { timer = null; return flush(env); });
    ctx.waitUntil(timer);
  }
}

async function flush(env) {
  const size = Number(env.MAX_BATCH_SIZE || 10);
  const maxRetries = Number(env.MAX_RETRIES || 3);
  const work = [];
  while (pending.length) {
    const batch = pending.splice(0, size);
    stats.batches_out++;
    stats.delivered += batch.length;
    work.push((async () => {
      let result;
      try {
        result = await env.CONSUMER.queue(env.QUEUE_NAME, batch.map(({ id, timestamp, attempts, body, serializedBody }) =>
          (serializedBody ? { id, timestamp, attempts, serializedBody } : { id, timestamp, attempts, body })));
      } catch (e) {
        stats.consumer_errors++;
        result = { outcome: "exception" };
      }
      // As the runtime does: an exception retries the batch; otherwise retry() > ack() > retryAll() > implicit ack.
      const retry = new Map((result.retryMessages || []).map((r) => [r.msgId, r.delaySeconds || 0]));
      const acks = new Set(result.explicitAcks || []);
      await Promise.all(batch.map(async (m) => {
        const again = result.outcome !== "ok" || retry.has(m.id)
          || (!result.ackAll && !acks.has(m.id) && result.retryBatch?.retry);
        if (!again) return void stats.acked++;
        if (m.attempts > maxRetries) {
          stats.dead_lettered++;
          if (env.DLQ) await env.DLQ.fetch("https://fake-host/batch", { method: "POST", body: JSON.stringify({ messages: [m.raw] }) });
          return;
        }
        stats.retried++;
        await scheduler.wait((retry.get(m.id) ?? result.retryBatch?.delaySeconds ?? 0) * 1000);
        pending.push({ ...m, attempts: m.attempts + 1 });
      }));
    })());
  }
  await Promise.all(work);
  if (pending.length) await flush(env);
}

export default {
  async fetch(request, env, ctx) {
    if (request.headers.get("x-bench-control") === "stats") return Response.json({ ...stats, pending: pending.length });
    const url = new URL(request.url);
    if (request.method !== "POST") return new Response("not found", { status: 404 });
    if (url.pathname === "/batch") {
      const { messages } = await request.json();
      stats.batches_in++;
      accept(env, ctx, messages);
    } else if (url.pathname === "/message") {
      const bytes = new Uint8Array(await request.arrayBuffer());
      let s = "";
      for (const b of bytes) s += String.fromCharCode(b);
      accept(env, ctx, [{ body: btoa(s), contentType: request.headers.get("X-Msg-Fmt") || undefined }]);
    } else return new Response("not found", { status: 404 });
    return Response.json({ metadata: { metrics: { backlogCount: pending.length, backlogBytes: 0, oldestMessageTimestamp: 0 } } });
  },
};
