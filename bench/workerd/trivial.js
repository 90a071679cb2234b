// The baseline of the cold-start figures: the smallest Worker workerd can serve.
export default { fetch: () => new Response("ok") };
