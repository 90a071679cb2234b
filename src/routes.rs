//! The Worker's one route table: every path, the methods it answers and what handles them. The
//! shell dispatches on [`Route`]; a known path asked with another method is a 405 whose `Allow`
//! header comes from this table, anything else a 404.

/// What handles a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Health,
    Telephony,
    EventsVerification,
    Events,
    TemplatesSync,
    TemplatesStatus,
    Reconcile,
    ReconcileStatus,
    ReconcileCancel,
    DeadLetters,
    Redrive,
    GuardStatus,
    GuardRelease,
}

/// (path, method, route), one row per method a path answers.
pub const ROUTES: &[(&str, &str, Route)] = &[
    ("/healthz", "GET", Route::Health),
    ("/okta/telephony", "POST", Route::Telephony),
    ("/okta/events", "GET", Route::EventsVerification),
    ("/okta/events", "POST", Route::Events),
    ("/admin/templates/sync", "POST", Route::TemplatesSync),
    ("/admin/templates/status", "GET", Route::TemplatesStatus),
    ("/admin/provisioning/reconcile", "POST", Route::Reconcile),
    ("/admin/provisioning/status", "GET", Route::ReconcileStatus),
    ("/admin/provisioning/cancel", "POST", Route::ReconcileCancel),
    ("/admin/provisioning/dead-letters", "GET", Route::DeadLetters),
    ("/admin/provisioning/redrive", "POST", Route::Redrive),
    ("/admin/guard/status", "GET", Route::GuardStatus),
    ("/admin/guard/release", "POST", Route::GuardRelease),
];

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    Route(Route),
    /// The path exists; these methods (for `Allow`, comma-separated) are what it answers.
    MethodNotAllowed(String),
    NotFound,
}

pub fn resolve(path: &str, method: &str) -> Resolved {
    let mut allow: Vec<&str> = Vec::new();
    for &(p, m, route) in ROUTES {
        if p == path {
            if m.eq_ignore_ascii_case(method) {
                return Resolved::Route(route);
            }
            allow.push(m);
        }
    }
    if allow.is_empty() {
        Resolved::NotFound
    } else {
        Resolved::MethodNotAllowed(allow.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_resolves_and_other_methods_get_their_allow_list() {
        for &(path, method, route) in ROUTES {
            assert_eq!(resolve(path, method), Resolved::Route(route));
        }
        assert_eq!(resolve("/okta/events", "PUT"), Resolved::MethodNotAllowed("GET, POST".into()));
        assert_eq!(resolve("/admin/provisioning/status", "POST"), Resolved::MethodNotAllowed("GET".into()));
        assert_eq!(resolve("/admin/provisioning/cancel", "GET"), Resolved::MethodNotAllowed("POST".into()));
        assert_eq!(resolve("/okta/telephony", "GET"), Resolved::MethodNotAllowed("POST".into()));
        assert_eq!(resolve("/nope", "GET"), Resolved::NotFound);
        assert_eq!(resolve("/okta/telephony/", "POST"), Resolved::NotFound, "exact paths only");
    }

    #[test]
    fn one_row_per_path_and_method() {
        for (i, a) in ROUTES.iter().enumerate() {
            assert!(ROUTES[i + 1..].iter().all(|b| (a.0, a.1) != (b.0, b.1)), "{a:?} twice");
        }
    }
}
