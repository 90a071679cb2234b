// The Worker's upstreams, in process: every outbound fetch of the Worker lands here (it is the
// Worker's globalOutbound).
//   GET  <OKTA_ORIGIN>/oauth2/<id>/v1/keys            → the JWKS text binding
//   POST <MESSAGING_ORIGIN>/ (X-Amz-Target PinpointSMSVoiceV2.SendTextMessage | SendVoiceMessage)
//                                                     → 200 {"MessageId": "standin-<n>"}, at once, no checks
//   anything else → the NET service binding (a loopback network: the Python stand-ins), if bound; else 502.
// A request with `x-bench-control: stats` answers the counters, and `last`: the body of the latest
// send per operation (the bench checks which template text reached the messaging call).
const last = {};
const stats = { jwks: 0, SendTextMessage: 0, SendVoiceMessage: 0, other_messaging: 0, forwarded: 0, unknown: 0 };
let n = 0;

export default {
  async fetch(request, env) {
    if (request.headers.get("x-bench-control") === "stats") return Response.json({ ...stats, last });
    const url = new URL(request.url);
    if (url.origin === env.OKTA_ORIGIN && request.method === "GET" && url.pathname.endsWith("/v1/keys")) {
      stats.jwks++;
      return new Response(env.JWKS, { headers: { "Content-Type": "application/json", "Cache-Control": "max-age=3600" } });
    }
    if (url.origin === env.MESSAGING_ORIGIN) {
      const op = (request.headers.get("X-Amz-Target") || "").split(".")[1] || "";
      if (op in stats) stats[op]++;
      else stats.other_messaging++;
      const body = await request.text();
      if (op) last[op] = body.slice(0, 2000);
      // Content-Length as AWS sends it (the Worker reads a declared, bounded body whole).
      const answer = `{"MessageId":"standin-${String(++n).padStart(12, "0")}"}`;
      return new Response(answer, { headers: { "Content-Type": "application/x-amz-json-1.0",
                                               "Content-Length": String(answer.length) } });
    }
    if (env.NET) {
      stats.forwarded++;
      return env.NET.fetch(request);
    }
    stats.unknown++;
    return new Response(`no stand-in for ${request.method} ${url.origin}${url.pathname}`, { status: 502 });
  },
};
