//! The queue message between the event hook (producer) and the provisioning consumer: one
//! relevant Okta event, or a bulk message naming many users. Both sides read this one type.

use serde::{Deserialize, Serialize};

/// Distinct users in one bulk queue message (~25 bytes each: well inside a message's 128 KB).
pub const BULK_USERS: usize = 500;

/// One relevant event, as enqueued for the provisioning consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueMessage {
    pub uuid: String,
    pub event_type: String,
    /// The Okta user id (`00u…`) of the `User` target, never the `AppUser` id.
    pub user_id: String,
    /// The `User` target's `alternateId` (the login), when Okta gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// A bulk message (a large delivery): more Okta user ids, each to be converged like `userId`.
    /// The consumer splits it into one message per user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
}

/// Large deliveries: the distinct users of `messages`, packed [`BULK_USERS`] to a message (the
/// first event of each user names it; the consumer converges users from Okta's state, not from
/// the events, so nothing is lost by packing).
pub fn pack(messages: &[&QueueMessage]) -> Vec<QueueMessage> {
    let mut seen = std::collections::HashSet::new();
    let users: Vec<&QueueMessage> = messages.iter().copied().filter(|m| seen.insert(m.user_id.as_str())).collect();
    users
        .chunks(BULK_USERS)
        .map(|chunk| QueueMessage {
            uuid: format!("{}+{}", chunk[0].uuid, chunk.len() - 1),
            event_type: chunk[0].event_type.clone(),
            user_id: chunk[0].user_id.clone(),
            login: None,
            published: chunk[0].published.clone(),
            app_id: None,
            group_id: None,
            users: chunk[1..].iter().map(|m| m.user_id.clone()).collect(),
        })
        .collect()
}
