// A KV namespace as workerd's kvNamespace binding speaks to it (workerd src/workerd/api/kv.c++):
//   GET    https://fake-host/<key>?urlencoded=true[&cache_ttl=N]   → 200 value (+ CF-KV-Metadata) | 404
//   PUT    https://fake-host/<key>?urlencoded=true[&expiration=T | &expiration_ttl=S], body = value
//   DELETE https://fake-host/<key>?urlencoded=true
//   GET    https://fake-host/?prefix=&key_count_limit=&cursor=      → {keys, list_complete, cursor?}
//   POST   https://fake-host/bulk/get {keys, type, withMetadata}    → {key: value | null}
// In memory, seeded from the SEED json binding ([{key, value}], the `wrangler kv bulk put` file of
// scripts/seed-kv). A request with `x-bench-control: stats` answers this namespace's counters.
const store = new Map(); // key → {value: Uint8Array, metadata: string | null, expires: ms | 0}
const stats = { get: 0, hit: 0, put: 0, delete: 0, list: 0, bulk: 0 };
let seeded = false;

function live(key) {
  const e = store.get(key);
  if (e && e.expires && e.expires <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return e;
}

export default {
  async fetch(request, env) {
    if (!seeded) {
      for (const { key, value } of env.SEED || []) store.set(key, { value: new TextEncoder().encode(value), metadata: null, expires: 0 });
      seeded = true;
    }
    if (request.headers.get("x-bench-control") === "stats") return Response.json({ ...stats, keys: store.size });
    const url = new URL(request.url);
    const key = decodeURIComponent(url.pathname.slice(1));
    if (request.method === "POST" && url.pathname === "/bulk/get") {
      stats.bulk++;
      const { keys, type, withMetadata } = await request.json();
      const out = {};
      for (const k of keys) {
        const e = live(k);
        let v = e ? new TextDecoder().decode(e.value) : null;
        if (v !== null && type === "json") v = JSON.parse(v);
        out[k] = withMetadata && e ? { value: v, metadata: e.metadata && JSON.parse(e.metadata) } : v;
      }
      return Response.json(out);
    }
    if (request.method === "GET" && url.pathname === "/") {
      stats.list++;
      const prefix = url.searchParams.get("prefix") || "";
      const limit = Number(url.searchParams.get("key_count_limit") || 1000);
      const after = url.searchParams.get("cursor") || "";
      const names = [...store.keys()].filter((k) => k.startsWith(prefix) && k > after && live(k)).sort();
      const page = names.slice(0, limit);
      const keys = page.map((name) => {
        const e = store.get(name);
        return { name, ...(e.expires ? { expiration: Math.floor(e.expires / 1000) } : {}),
                 ...(e.metadata ? { metadata: JSON.parse(e.metadata) } : {}) };
      });
      const complete = page.length === names.length;
      return Response.json({ keys, list_complete: complete, ...(complete ? {} : { cursor: page[page.length - 1] }) });
    }
    if (request.method === "GET") {
      stats.get++;
      const e = live(key);
      if (!e) return new Response(null, { status: 404 });
      stats.hit++;
      return new Response(e.value, { headers: e.metadata ? { "CF-KV-Metadata": e.metadata } : {} });
    }
    if (request.method === "PUT") {
      stats.put++;
      const p = url.searchParams;
      const expires = p.has("expiration") ? Number(p.get("expiration")) * 1000
        : p.has("expiration_ttl") ? Date.now() + Number(p.get("expiration_ttl")) * 1000 : 0;
      store.set(key, { value: new Uint8Array(await request.arrayBuffer()), metadata: request.headers.get("CF-KV-Metadata"), expires });
      return new Response(null);
    }
    if (request.method === "DELETE") {
      stats.delete++;
      store.delete(key);
      return new Response(null);
    }
    return new Response("method not allowed", { status: 405 });
  },
};
