// The bench's view into the process: GET /stats → the counters of every stand-in bound here.
export default {
  async fetch(request, env) {
    const out = {};
    for (const [name, svc] of Object.entries(env)) {
      if (typeof svc?.fetch !== "function") continue;
      const r = await svc.fetch("http://control/", { headers: { "x-bench-control": "stats" } });
      out[name] = await r.json();
    }
    return Response.json(out);
  },
};
