//! okta-edge-hooks: the edge backend between Okta's hooks and AWS, as one Cloudflare Worker.
//! See ARCHITECTURE.md for the module map and the request flow.
//!
//! Everything but `shell` is the pure core: it compiles and is tested natively and reaches the
//! outside world only through the traits in `edge`.

pub mod admin;
pub mod auth;
pub mod aws;
pub mod budget;
pub mod edge;
pub mod events;
pub mod guard;
pub mod http;
pub mod inflight;
pub mod ledger;
pub mod locale;
pub mod okta;
pub mod phone;
pub mod provisioning;
pub mod retry;
pub mod routes;
pub mod settings;
pub mod ssml;
pub mod sync;
pub mod template;
pub mod voice;

pub mod telephony;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;

#[cfg(all(target_arch = "wasm32", feature = "shell"))]
mod shell;
#[cfg(target_arch = "wasm32")]
pub mod webcrypto;
