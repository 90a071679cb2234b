//! The two item formats the template table may hold, read into templates.
//!
//! **The project's own format** (key `locale` + `channel`, see `infra-aws/template-table.yaml`):
//!
//! | attribute | type | |
//! |---|---|---|
//! | `locale` | S | partition key: a locale like `en-US`, `pt-BR`, `cmn-CN`, `arb` |
//! | `channel` | S | sort key: `sms` or `voice` |
//! | `body` | S | the message with `{{otp}}`; SSML (`<speak>…</speak>`) for voice |
//! | `voiceId` | S | voice items only: an upper-case `VoiceId` such as `JOANNA` |
//! | `updatedAt` | S | optional, informational: when a person last edited it (ISO 8601) |
//!
//! **The AWS guidance's legacy format** (key `id` + `messagetype`), read as it is so that a team
//! running the guidance can point the Worker at its table unchanged:
//! `{id: S, messagetype: S "sms" | "voice call", language: S, message: S, voiceid?: S}`, with the
//! markers `@otp` / `@otp2`.
//!
//! Other attributes are ignored. Channel names are case-insensitive. An item that has attributes
//! of both formats, of neither, or a known attribute of the wrong type is invalid; so is any
//! template that `Template::validate` refuses.

use std::fmt;

use crate::aws::dynamodb::{AttributeValue, Item};
use crate::locale::Locale;
use crate::template::{Channel, Template, TemplateError};

/// Which format an item is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Own,
    Legacy,
}

/// One item, read: a label for reports, and either a template or why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `en-US/sms` (own format), `id 2` (legacy) or `item 17` (scan order) when neither is readable.
    pub label: String,
    pub format: Option<Format>,
    /// The locale and channel, whenever they could be read (also for an invalid template, so
    /// that duplicates are found among all items).
    pub key: Option<(Locale, Channel)>,
    pub template: Result<Template, String>,
}

/// Longest label kept (attribute values are user input).
const MAX_LABEL_CHARS: usize = 64;

/// Reads one item. `index` is its position in the scan, for items without a readable key.
pub fn parse_item(item: &Item, index: usize) -> Entry {
    let has = |name: &str| item.contains_key(name);
    let own = has("channel") || has("body");
    let legacy = has("messagetype") || has("message") || has("language");
    let fallback_label = format!("item {index}");
    let format = match (own, legacy) {
        (true, false) => Format::Own,
        (false, true) => Format::Legacy,
        (true, true) => {
            return invalid(
                fallback_label,
                None,
                "has attributes of both formats (channel/body and messagetype/message)",
            )
        }
        (false, false) => {
            return invalid(
                fallback_label,
                None,
                "is in neither format: no channel/body (own format) nor messagetype/message (legacy)",
            )
        }
    };
    match format {
        Format::Own => parse_own(item, fallback_label),
        Format::Legacy => parse_legacy(item, fallback_label),
    }
}

fn parse_own(item: &Item, fallback_label: String) -> Entry {
    let fields = (string(item, "locale"), string(item, "channel"));
    let label = match &fields {
        (Ok(Some(l)), Ok(Some(c))) => clean(&format!("{l}/{c}")),
        (Ok(Some(l)), _) => clean(&format!("{l}/?")),
        _ => fallback_label,
    };
    let result = (|| {
        let locale = fields.0.map_err(|e| (None, e))?.ok_or((None, "has no locale".to_string()))?;
        let channel = fields.1.map_err(|e| (None, e))?.ok_or((None, "has no channel".to_string()))?;
        let channel = match channel.trim().to_ascii_lowercase().as_str() {
            "sms" => Channel::Sms,
            "voice" => Channel::Voice,
            _ => return Err((None, format!("channel `{}` is neither `sms` nor `voice`", clean(channel)))),
        };
        let locale =
            Locale::parse(locale).ok_or_else(|| (None, TemplateError::BadLocale(clean(locale)).to_string()))?;
        let key = Some((locale.clone(), channel));
        let body = string(item, "body").map_err(|e| (key.clone(), e))?;
        let body = body.ok_or((key.clone(), "has no body".to_string()))?;
        let voice_id = string(item, "voiceId").map_err(|e| (key.clone(), e))?;
        string(item, "updatedAt").map_err(|e| (key.clone(), e))?;
        Ok((locale, channel, Template { body: body.to_string(), voice_id: voice_id.map(str::to_string) }))
    })();
    finish(label, Format::Own, result)
}

fn parse_legacy(item: &Item, fallback_label: String) -> Entry {
    let label = match item.get("id") {
        Some(AttributeValue::S(id)) | Some(AttributeValue::N(id)) => clean(&format!("id {id}")),
        _ => fallback_label,
    };
    let result = (|| {
        let kind = string(item, "messagetype").map_err(|e| (None, e))?.ok_or((None, "has no messagetype".into()))?;
        let channel = match kind.trim().to_ascii_lowercase().as_str() {
            "sms" => Channel::Sms,
            "voice call" | "voice" => Channel::Voice,
            _ => return Err((None, format!("messagetype `{}` is neither `sms` nor `voice call`", clean(kind)))),
        };
        let language = string(item, "language").map_err(|e| (None, e))?.ok_or((None, "has no language".into()))?;
        let locale =
            Locale::parse(language).ok_or_else(|| (None, TemplateError::BadLocale(clean(language)).to_string()))?;
        let key = Some((locale.clone(), channel));
        let body = string(item, "message").map_err(|e| (key.clone(), e))?;
        let body = body.ok_or((key.clone(), "has no message".to_string()))?;
        let voice_id = string(item, "voiceid").map_err(|e| (key.clone(), e))?;
        Ok((locale, channel, Template { body: body.to_string(), voice_id: voice_id.map(str::to_string) }))
    })();
    finish(label, Format::Legacy, result)
}

type Read = Result<(Locale, Channel, Template), (Option<(Locale, Channel)>, String)>;

/// Validates the template of a readable item.
fn finish(label: String, format: Format, read: Read) -> Entry {
    match read {
        Err((key, reason)) => Entry { label, format: Some(format), key, template: Err(reason) },
        Ok((locale, channel, template)) => {
            let checked = template.validate(channel).map(|()| template).map_err(|e| e.to_string());
            Entry { label, format: Some(format), key: Some((locale, channel)), template: checked }
        }
    }
}

fn invalid(label: String, format: Option<Format>, reason: &str) -> Entry {
    Entry { label, format, key: None, template: Err(reason.to_string()) }
}

/// An attribute that must be a string when present.
fn string<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>, String> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s)),
        Some(other) => Err(format!("attribute {name} is of type {}, not S", other.type_name())),
    }
}

/// User text for a report: printable, one line, bounded.
fn clean(text: &str) -> String {
    let mut out: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_LABEL_CHARS).collect();
    if text.chars().count() > MAX_LABEL_CHARS {
        out.push('…');
    }
    out
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Own => "own",
            Format::Legacy => "legacy",
        })
    }
}

/// The project-format item for one template (what `scripts/seed-dynamodb` writes).
pub fn own_item(locale: &Locale, channel: Channel, template: &Template, updated_at: Option<&str>) -> Item {
    let mut item = Item::new();
    item.insert("locale".into(), AttributeValue::S(locale.to_string()));
    item.insert("channel".into(), AttributeValue::S(channel.as_str().into()));
    item.insert("body".into(), AttributeValue::S(template.body.clone()));
    if let Some(v) = &template.voice_id {
        item.insert("voiceId".into(), AttributeValue::S(v.clone()));
    }
    if let Some(t) = updated_at {
        item.insert("updatedAt".into(), AttributeValue::S(t.into()));
    }
    item
}
