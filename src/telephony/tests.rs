//! The request path end to end, natively: real auth (pure-Rust RS256), templates from an
//! in-memory KV, a scripted End User Messaging peer.
