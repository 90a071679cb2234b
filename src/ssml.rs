//! SSML for voice messages: escaping text for interpolation, and checking that
//! a template is well-formed SSML that Amazon Polly accepts. Deliberately not
//! a general XML parser.

use std::fmt;

/// Largest SSML body `SendVoiceMessage` accepts, in bytes (tags included).
pub const MAX_BYTES: usize = 6000;

/// Deepest element nesting [`validate`] accepts (`<speak>` is depth 1).
pub const MAX_DEPTH: usize = 32;

/// Most attributes [`validate`] accepts on one tag.
const MAX_ATTRIBUTES: usize = 8;

/// Tags Amazon Polly documents (<https://docs.aws.amazon.com/polly/latest/dg/supportedtags.html>).
const TAGS: &[&str] = &[
    "speak",
    "break",
    "emphasis",
    "lang",
    "mark",
    "p",
    "phoneme",
    "prosody",
    "s",
    "say-as",
    "sub",
    "w",
    "amazon:effect",
    "amazon:domain",
    "amazon:auto-breaths",
    "amazon:breath",
];

/// Markup that [`validate`] rejects outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// `<!-- … -->`
    Comment,
    /// `<? … ?>`, including the `<?xml … ?>` declaration.
    ProcessingInstruction,
    /// `<![CDATA[ … ]]>`, or a stray `]]>` in text.
    Cdata,
    /// `<!DOCTYPE …>`
    Doctype,
    /// Any other `<!…` declaration.
    Declaration,
}

/// Why an SSML string was rejected. Offsets are byte offsets into the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsmlError {
    /// Longer than [`MAX_BYTES`].
    TooLong { len: usize },
    /// Only whitespace: no `<speak>` element.
    Empty,
    /// Input ended inside a tag, attribute value or entity.
    UnexpectedEnd { offset: usize },
    /// Non-whitespace text before `<speak>` or after `</speak>`.
    TextOutsideSpeak { offset: usize },
    /// The root element is not `<speak>`.
    RootNotSpeak { offset: usize },
    /// A second element after `</speak>`.
    ContentAfterSpeak { offset: usize },
    /// `<speak>` inside `<speak>`.
    NestedSpeak { offset: usize },
    /// A comment, processing instruction, CDATA section or DOCTYPE.
    Forbidden { markup: Markup, offset: usize },
    /// A tag Polly does not document (e.g. `script`, `audio`).
    UnknownTag { name: String, offset: usize },
    /// A malformed tag: missing name, bad character, missing `>`, …
    BadTag { offset: usize },
    /// A malformed attribute: missing `=`, unquoted value, no space before it, …
    BadAttribute { offset: usize },
    /// The same attribute twice on one tag.
    DuplicateAttribute { name: String, offset: usize },
    /// More attributes on one tag than any Polly tag needs.
    TooManyAttributes { offset: usize },
    /// A raw `<` inside an attribute value.
    LtInAttributeValue { offset: usize },
    /// `&` not starting `&amp; &lt; &gt; &quot; &apos;`, `&#NNN;` or `&#xHH;`
    /// (or a reference to a character XML does not allow).
    BadEntity { offset: usize },
    /// A control character XML does not allow (anything below U+0020 but
    /// tab, line feed and carriage return; U+FFFE; U+FFFF).
    InvalidChar { offset: usize },
    /// A close tag with no open element.
    UnexpectedClose { tag: &'static str, offset: usize },
    /// A close tag that does not match the innermost open element.
    MismatchedClose { expected: &'static str, found: &'static str, offset: usize },
    /// An element still open at the end of input (`offset` = its start tag).
    Unclosed { tag: &'static str, offset: usize },
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep { offset: usize },
}

impl fmt::Display for SsmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SsmlError::*;
        match self {
            TooLong { len } => write!(f, "SSML is {len} bytes; the limit is {MAX_BYTES}"),
            Empty => f.write_str("SSML is empty: expected a <speak> element"),
            UnexpectedEnd { offset } => write!(f, "unexpected end of SSML at byte {offset}"),
            TextOutsideSpeak { offset } => {
                write!(f, "text outside <speak>…</speak> at byte {offset}")
            }
            RootNotSpeak { offset } => {
                write!(f, "root element at byte {offset} must be <speak>")
            }
            ContentAfterSpeak { offset } => {
                write!(f, "element after </speak> at byte {offset}")
            }
            NestedSpeak { offset } => write!(f, "<speak> inside <speak> at byte {offset}"),
            Forbidden { markup, offset } => {
                let what = match markup {
                    Markup::Comment => "comments are",
                    Markup::ProcessingInstruction => "processing instructions (and <?xml?> declarations) are",
                    Markup::Cdata => "CDATA sections (and a bare ]]>) are",
                    Markup::Doctype => "DOCTYPE declarations are",
                    Markup::Declaration => "<!…> declarations are",
                };
                write!(f, "{what} not allowed in SSML (byte {offset})")
            }
            UnknownTag { name, offset } => {
                write!(f, "tag <{name}> at byte {offset} is not supported by Amazon Polly")
            }
            BadTag { offset } => write!(f, "malformed tag at byte {offset}"),
            BadAttribute { offset } => write!(f, "malformed attribute at byte {offset}"),
            DuplicateAttribute { name, offset } => {
                write!(f, "duplicate attribute {name:?} at byte {offset}")
            }
            TooManyAttributes { offset } => {
                write!(f, "more than {MAX_ATTRIBUTES} attributes on the tag at byte {offset}")
            }
            LtInAttributeValue { offset } => {
                write!(f, "'<' in attribute value at byte {offset}; write &lt;")
            }
            BadEntity { offset } => write!(
                f,
                "bad entity at byte {offset}: only &amp; &lt; &gt; &quot; &apos; &#NNN; &#xHH; \
                 are allowed (write a literal & as &amp;)"
            ),
            InvalidChar { offset } => {
                write!(f, "character not allowed in XML at byte {offset}")
            }
            UnexpectedClose { tag, offset } => {
                write!(f, "</{tag}> at byte {offset} closes nothing")
            }
            MismatchedClose { expected, found, offset } => {
                write!(f, "</{found}> at byte {offset} does not match the open <{expected}>")
            }
            Unclosed { tag, offset } => {
                write!(f, "<{tag}> opened at byte {offset} is never closed")
            }
            TooDeep { offset } => write!(f, "elements nested deeper than {MAX_DEPTH} levels at byte {offset}"),
        }
    }
}

impl std::error::Error for SsmlError {}

/// XML-escapes `& < > " '` so that `text` can be put into SSML content or an
/// attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Checks that `ssml` is a single well-formed `<speak>` element, at most
/// [`MAX_BYTES`] long and [`MAX_DEPTH`] deep, using only tags Polly
/// documents, and free of comments, processing instructions, CDATA, DOCTYPE
/// and entities other than the five predefined ones and numeric references.
/// Attribute names and values are checked for syntax only.
pub fn validate(ssml: &str) -> Result<(), SsmlError> {
    let b = ssml.as_bytes();
    if b.len() > MAX_BYTES {
        return Err(SsmlError::TooLong { len: b.len() });
    }
    // Open elements: (tag, offset of its '<').
    let mut stack: [(&'static str, usize); MAX_DEPTH] = [("", 0); MAX_DEPTH];
    let mut depth = 0;
    let mut seen_root = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => {
                let start = i;
                match b.get(i + 1) {
                    None => return Err(SsmlError::UnexpectedEnd { offset: b.len() }),
                    Some(b'!') => return Err(declaration(b, start)),
                    Some(b'?') => {
                        return Err(SsmlError::Forbidden { markup: Markup::ProcessingInstruction, offset: start });
                    }
                    Some(b'/') => {
                        let (tag, end) = tag_name(b, start + 2, start)?;
                        i = skip_ws(b, end);
                        match b.get(i) {
                            Some(b'>') => i += 1,
                            None => return Err(SsmlError::UnexpectedEnd { offset: i }),
                            Some(_) => return Err(SsmlError::BadTag { offset: i }),
                        }
                        if depth == 0 {
                            return Err(SsmlError::UnexpectedClose { tag, offset: start });
                        }
                        let (open, _) = stack[depth - 1];
                        if open != tag {
                            return Err(SsmlError::MismatchedClose { expected: open, found: tag, offset: start });
                        }
                        depth -= 1;
                    }
                    Some(_) => {
                        let (tag, end) = tag_name(b, start + 1, start)?;
                        if depth == 0 {
                            if seen_root {
                                return Err(SsmlError::ContentAfterSpeak { offset: start });
                            }
                            if tag != "speak" {
                                return Err(SsmlError::RootNotSpeak { offset: start });
                            }
                            seen_root = true;
                        } else if tag == "speak" {
                            return Err(SsmlError::NestedSpeak { offset: start });
                        }
                        let (self_closing, end) = attributes(b, start, end)?;
                        if !self_closing {
                            if depth == MAX_DEPTH {
                                return Err(SsmlError::TooDeep { offset: start });
                            }
                            stack[depth] = (tag, start);
                            depth += 1;
                        }
                        i = end;
                    }
                }
            }
            b'&' => {
                if depth == 0 {
                    return Err(SsmlError::TextOutsideSpeak { offset: i });
                }
                i = entity(b, i)?;
            }
            c => {
                check_char(b, i)?;
                if depth == 0 && !is_ws(c) {
                    return Err(SsmlError::TextOutsideSpeak { offset: i });
                }
                if c == b']' && b[i..].starts_with(b"]]>") {
                    return Err(SsmlError::Forbidden { markup: Markup::Cdata, offset: i });
                }
                i += 1;
            }
        }
    }
    if depth > 0 {
        let (tag, offset) = stack[depth - 1];
        return Err(SsmlError::Unclosed { tag, offset });
    }
    if !seen_root {
        return Err(SsmlError::Empty);
    }
    Ok(())
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&c| is_ws(c)) {
        i += 1;
    }
    i
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':')
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || matches!(c, b'_' | b':')
}

/// End of the ASCII XML name starting at `i`; `None` if there is none.
fn name_end(b: &[u8], i: usize) -> Option<usize> {
    if !b.get(i).is_some_and(|&c| is_name_start(c)) {
        return None;
    }
    let mut j = i + 1;
    while b.get(j).is_some_and(|&c| is_name_char(c)) {
        j += 1;
    }
    Some(j)
}

/// The known tag whose name starts at `i` (in the tag at `start`), and the
/// offset after the name.
fn tag_name(b: &[u8], i: usize, start: usize) -> Result<(&'static str, usize), SsmlError> {
    let Some(end) = name_end(b, i) else {
        return Err(if i >= b.len() {
            SsmlError::UnexpectedEnd { offset: b.len() }
        } else {
            SsmlError::BadTag { offset: i }
        });
    };
    let name = &b[i..end];
    match TAGS.iter().find(|t| t.as_bytes() == name) {
        Some(tag) => Ok((tag, end)),
        None => Err(SsmlError::UnknownTag {
            // The name is ASCII; keep the message short.
            name: String::from_utf8_lossy(&name[..name.len().min(40)]).into_owned(),
            offset: start,
        }),
    }
}

/// Parses the attributes of the start tag at `start` from `i` (just after
/// the name) up to and including `>` or `/>`. Returns whether the tag is
/// self-closing and the offset after it.
fn attributes(b: &[u8], start: usize, mut i: usize) -> Result<(bool, usize), SsmlError> {
    let mut names: [&[u8]; MAX_ATTRIBUTES] = [&[]; MAX_ATTRIBUTES];
    let mut count = 0;
    loop {
        let after_ws = skip_ws(b, i);
        let spaced = after_ws > i;
        i = after_ws;
        match b.get(i) {
            None => return Err(SsmlError::UnexpectedEnd { offset: i }),
            Some(b'>') => return Ok((false, i + 1)),
            Some(b'/') => {
                return match b.get(i + 1) {
                    Some(b'>') => Ok((true, i + 2)),
                    None => Err(SsmlError::UnexpectedEnd { offset: i + 1 }),
                    Some(_) => Err(SsmlError::BadTag { offset: i }),
                };
            }
            Some(_) => {}
        }
        let name_start = i;
        let Some(end) = name_end(b, i) else {
            return Err(SsmlError::BadTag { offset: i });
        };
        if !spaced {
            return Err(SsmlError::BadAttribute { offset: i });
        }
        let name = &b[i..end];
        if names[..count].contains(&name) {
            return Err(SsmlError::DuplicateAttribute {
                name: String::from_utf8_lossy(&name[..name.len().min(40)]).into_owned(),
                offset: name_start,
            });
        }
        if count == MAX_ATTRIBUTES {
            return Err(SsmlError::TooManyAttributes { offset: start });
        }
        names[count] = name;
        count += 1;
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b'=') => i = skip_ws(b, i + 1),
            None => return Err(SsmlError::UnexpectedEnd { offset: i }),
            Some(_) => return Err(SsmlError::BadAttribute { offset: name_start }),
        }
        let quote = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            None => return Err(SsmlError::UnexpectedEnd { offset: i }),
            Some(_) => return Err(SsmlError::BadAttribute { offset: name_start }),
        };
        i += 1;
        loop {
            match b.get(i) {
                None => return Err(SsmlError::UnexpectedEnd { offset: i }),
                Some(&c) if c == quote => {
                    i += 1;
                    break;
                }
                Some(b'<') => return Err(SsmlError::LtInAttributeValue { offset: i }),
                Some(b'&') => i = entity(b, i)?,
                Some(_) => {
                    check_char(b, i)?;
                    i += 1;
                }
            }
        }
    }
}

/// Checks the entity or character reference at `i` (an `&`) and returns the
/// offset after its `;`.
fn entity(b: &[u8], i: usize) -> Result<usize, SsmlError> {
    let bad = SsmlError::BadEntity { offset: i };
    // Scan the reference body: letters, digits and '#', up to a bounded
    // length (`&#x10FFFF;` plus a few leading zeros).
    let rest = &b[i + 1..];
    let mut semi = 0;
    loop {
        match rest.get(semi) {
            Some(b';') => break,
            Some(c) if semi < 16 && (c.is_ascii_alphanumeric() || *c == b'#') => semi += 1,
            Some(_) => return Err(bad),
            None => return Err(SsmlError::UnexpectedEnd { offset: b.len() }),
        }
    }
    let body = &rest[..semi];
    let ok = match body {
        b"amp" | b"lt" | b"gt" | b"quot" | b"apos" => true,
        [b'#', b'x', hex @ ..] => char_ref(hex, 16),
        [b'#', dec @ ..] => char_ref(dec, 10),
        _ => false,
    };
    if ok {
        Ok(i + 1 + semi + 1)
    } else {
        Err(bad)
    }
}

/// Whether `digits` (in `radix`) name a character XML allows.
fn char_ref(digits: &[u8], radix: u32) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut value: u32 = 0;
    for &d in digits {
        let Some(v) = (d as char).to_digit(radix) else {
            return false;
        };
        value = match value.checked_mul(radix).and_then(|x| x.checked_add(v)) {
            Some(x) if x <= 0x10FFFF => x,
            _ => return false,
        };
    }
    matches!(value, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// Rejects the control characters, U+FFFE and U+FFFF that XML 1.0 forbids.
fn check_char(b: &[u8], i: usize) -> Result<(), SsmlError> {
    let c = b[i];
    let bad = (c < 0x20 && !is_ws(c))
        || (c == 0xEF && b.get(i + 1) == Some(&0xBF) && matches!(b.get(i + 2), Some(0xBE | 0xBF)));
    if bad {
        Err(SsmlError::InvalidChar { offset: i })
    } else {
        Ok(())
    }
}

/// The error for `<!` at `i`.
fn declaration(b: &[u8], i: usize) -> SsmlError {
    let rest = &b[i + 2..];
    let markup = if rest.starts_with(b"--") {
        Markup::Comment
    } else if rest.starts_with(b"[CDATA[") {
        Markup::Cdata
    } else if rest.len() >= 7 && rest[..7].eq_ignore_ascii_case(b"DOCTYPE") {
        Markup::Doctype
    } else {
        Markup::Declaration
    };
    SsmlError::Forbidden { markup, offset: i }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "<speak><prosody rate=\"90%\">Hello. Your verification code is \
        <break time=\"300ms\"/>{{otp}}<break time=\"700ms\"/> Again, your code is \
        <break time=\"300ms\"/>{{otp}}.<break time=\"500ms\"/> Goodbye.</prosody></speak>";

    const LEGACY: &str = "<speak> <prosody rate='slow'> Your one time passcode is \
        <emphasis>@otp</emphasis>. <break time='0.5s'/> I repeat, your code is \
        <emphasis>@otp2</emphasis>. <amazon:effect phonation='soft'>Thank you for \
        listening.</amazon:effect> </prosody> </speak>";

    fn nested(depth: usize) -> String {
        let mut s = String::from("<speak>");
        s.push_str(&"<p>".repeat(depth - 1));
        s.push('x');
        s.push_str(&"</p>".repeat(depth - 1));
        s.push_str("</speak>");
        s
    }

    #[test]
    fn accepts_seed_style_template() {
        assert_eq!(validate(SEED), Ok(()));
        let full = "\n <speak xml:lang=\"ja-JP\">\r\n<p><s>認証コードは、{{otp}}です。</s></p>\
            <say-as interpret-as='digits'>123</say-as><lang xml:lang=\"en-US\">OK</lang>\
            <sub alias=\"World Wide Web\">WWW</sub><w role=\"amazon:VB\">read</w>\
            <phoneme alphabet=\"ipa\" ph=\"pɪˈkɑːn\">pecan</phoneme><mark name=\"m1\"/>\
            <amazon:domain name=\"news\">x</amazon:domain><amazon:auto-breaths>y\
            <amazon:breath/></amazon:auto-breaths>&amp;&lt;&gt;&quot;&apos;&#65;&#x1F600;\
            </speak >\n";
        assert_eq!(validate(full), Ok(()));
    }

    #[test]
    fn accepts_legacy_aws_guidance_template() {
        assert_eq!(validate(LEGACY), Ok(()));
    }

    #[test]
    fn accepts_self_closing_break() {
        assert_eq!(validate("<speak>a<break time=\"300ms\"/>b</speak>"), Ok(()));
        assert_eq!(validate("<speak>a<break time='1s' />b<break/></speak>"), Ok(()));
        assert_eq!(validate("<speak/>"), Ok(()));
    }

    #[test]
    fn rejects_unclosed_tag() {
        assert_eq!(
            validate("<speak><p>Hello</speak>"),
            Err(SsmlError::MismatchedClose { expected: "p", found: "speak", offset: 15 })
        );
        assert_eq!(validate("<speak><p>Hello"), Err(SsmlError::Unclosed { tag: "p", offset: 7 }));
        assert_eq!(validate("<speak>Hello"), Err(SsmlError::Unclosed { tag: "speak", offset: 0 }));
        assert_eq!(validate("<speak><break time=\"1s\""), Err(SsmlError::UnexpectedEnd { offset: 23 }));
        assert_eq!(validate("<speak><break time=\"1s></speak>"), Err(SsmlError::LtInAttributeValue { offset: 23 }));
    }

    #[test]
    fn rejects_mismatched_close() {
        let err = validate("<speak><p><s>x</p></s></speak>").unwrap_err();
        assert_eq!(err, SsmlError::MismatchedClose { expected: "s", found: "p", offset: 14 });
        assert_eq!(err.to_string(), "</p> at byte 14 does not match the open <s>");
        assert_eq!(validate("</speak>"), Err(SsmlError::UnexpectedClose { tag: "speak", offset: 0 }));
    }

    #[test]
    fn rejects_unknown_tag() {
        for (ssml, name) in [
            ("<speak><script>x</script></speak>", "script"),
            ("<speak><audio src=\"x.mp3\"/></speak>", "audio"),
            ("<speak><Break/></speak>", "Break"),
            ("<speak><amazon:whispered>x</amazon:whispered></speak>", "amazon:whispered"),
        ] {
            let err = validate(ssml).unwrap_err();
            assert_eq!(err, SsmlError::UnknownTag { name: name.into(), offset: 7 });
            assert!(err.to_string().contains(name), "{err}");
        }
        assert_eq!(validate("<html><speak/></html>"), Err(SsmlError::UnknownTag { name: "html".into(), offset: 0 }));
        assert_eq!(validate("<p>x</p>"), Err(SsmlError::RootNotSpeak { offset: 0 }));
        assert_eq!(validate("<speak><speak/></speak>"), Err(SsmlError::NestedSpeak { offset: 7 }));
    }

    #[test]
    fn rejects_text_outside_speak() {
        assert_eq!(validate("Hi <speak>x</speak>"), Err(SsmlError::TextOutsideSpeak { offset: 0 }));
        assert_eq!(validate("<speak>x</speak>.\n"), Err(SsmlError::TextOutsideSpeak { offset: 16 }));
        assert_eq!(validate("<speak>x</speak>&amp;"), Err(SsmlError::TextOutsideSpeak { offset: 16 }));
        assert_eq!(validate("<speak>x</speak><speak>y</speak>"), Err(SsmlError::ContentAfterSpeak { offset: 16 }));
        assert_eq!(validate("\u{feff}<speak/>"), Err(SsmlError::TextOutsideSpeak { offset: 0 }));
        assert_eq!(validate(""), Err(SsmlError::Empty));
        assert_eq!(validate(" \n\t"), Err(SsmlError::Empty));
        assert_eq!(validate("plain text"), Err(SsmlError::TextOutsideSpeak { offset: 0 }));
    }

    #[test]
    fn rejects_bad_entity() {
        for (ssml, offset) in [
            ("<speak>Q&A</speak>", 8),
            ("<speak>&nbsp;</speak>", 7),
            ("<speak>&AMP;</speak>", 7),
            ("<speak>&#;</speak>", 7),
            ("<speak>&#x;</speak>", 7),
            ("<speak>&#X41;</speak>", 7),
            ("<speak>&#0;</speak>", 7),
            ("<speak>&#xD800;</speak>", 7),
            ("<speak>&#x110000;</speak>", 7),
            ("<speak>&#99999999999999;</speak>", 7),
            ("<speak>&#12a;</speak>", 7),
            ("<speak><break time=\"1&s\"/></speak>", 21),
        ] {
            assert_eq!(validate(ssml), Err(SsmlError::BadEntity { offset }), "{ssml}");
        }
        assert_eq!(validate("<speak>&amp"), Err(SsmlError::UnexpectedEnd { offset: 11 }));
        assert_eq!(validate("<speak>a\u{1}b</speak>"), Err(SsmlError::InvalidChar { offset: 8 }));
    }

    #[test]
    fn rejects_comment_and_doctype() {
        use Markup::*;
        for (ssml, markup, offset) in [
            ("<speak><!-- hi --></speak>", Comment, 7),
            ("<!DOCTYPE speak><speak/>", Doctype, 0),
            ("<?xml version=\"1.0\"?><speak/>", ProcessingInstruction, 0),
            ("<speak><?php echo 1 ?></speak>", ProcessingInstruction, 7),
            ("<speak><![CDATA[x]]></speak>", Cdata, 7),
            ("<speak>a ]]> b</speak>", Cdata, 9),
            ("<speak><!ENTITY x \"y\"></speak>", Declaration, 7),
        ] {
            let err = validate(ssml).unwrap_err();
            assert_eq!(err, SsmlError::Forbidden { markup, offset }, "{ssml}");
            assert!(err.to_string().contains("not allowed"), "{err}");
        }
    }

    #[test]
    fn rejects_duplicate_attribute() {
        let err = validate("<speak><prosody rate=\"slow\" rate='fast'>x</prosody></speak>").unwrap_err();
        assert_eq!(err, SsmlError::DuplicateAttribute { name: "rate".into(), offset: 28 });
        assert_eq!(err.to_string(), "duplicate attribute \"rate\" at byte 28");
        for ssml in [
            "<speak><break time=1s/></speak>",
            "<speak><break time/></speak>",
            "<speak><prosody rate=\"slow\"volume=\"loud\">x</prosody></speak>",
        ] {
            assert!(matches!(validate(ssml), Err(SsmlError::BadAttribute { .. })), "{ssml}");
        }
        assert!(matches!(
            validate("<speak><break a='1' b='1' c='1' d='1' e='1' f='1' g='1' h='1' i='1'/></speak>"),
            Err(SsmlError::TooManyAttributes { offset: 7 })
        ));
        assert_eq!(validate("<speak>< p>x</p></speak>"), Err(SsmlError::BadTag { offset: 8 }));
    }

    #[test]
    fn rejects_oversize() {
        let pad = |n: usize| format!("<speak>{}</speak>", "a".repeat(n - 15));
        assert_eq!(validate(&pad(MAX_BYTES)), Ok(()));
        let err = validate(&pad(MAX_BYTES + 1)).unwrap_err();
        assert_eq!(err, SsmlError::TooLong { len: 6001 });
        assert_eq!(err.to_string(), "SSML is 6001 bytes; the limit is 6000");
    }

    #[test]
    fn rejects_deep_nesting() {
        assert_eq!(validate(&nested(MAX_DEPTH)), Ok(()));
        assert_eq!(validate(&nested(MAX_DEPTH + 1)), Err(SsmlError::TooDeep { offset: 7 + 3 * (MAX_DEPTH - 1) }));
        assert!(matches!(validate(&"<speak>".repeat(800)), Err(SsmlError::NestedSpeak { .. })));
        assert!(matches!(validate(&format!("<speak>{}", "<s>".repeat(1500))), Err(SsmlError::TooDeep { .. })));
    }

    #[test]
    fn escape_escapes_all_five() {
        assert_eq!(escape(r#"a&b<c>d"e'f"#), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
        assert_eq!(escape("Zoë 東京"), "Zoë 東京");
        let escaped = escape("<speak>&\"'</speak>");
        assert_eq!(validate(&format!("<speak>{escaped}</speak>")), Ok(()));
        assert_eq!(validate(&format!("<speak><mark name=\"{escaped}\"/></speak>")), Ok(()));
    }

    /// Deterministic xorshift; no dependencies.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn never_panics_on_mutated_or_random_input() {
        let templates = [SEED, LEGACY, "<speak>認証コードは、{{otp}}です。&#x41;</speak>"];
        let inserts = [
            "<", ">", "/", "/>", "&", ";", "&#", "&#x", "\"", "'", "=", " ", "<!--", "<?", "]]>", "<speak>",
            "</speak>", "</p>", "<p>", "é", "\u{0}", "\u{ffff}", "&amp;",
        ];
        let mut checked = 0usize;
        for t in templates {
            let bounds: Vec<usize> = (0..=t.len()).filter(|&i| t.is_char_boundary(i)).collect();
            for &i in &bounds {
                let _ = validate(&t[..i]); // truncated
                let _ = validate(&t[i..]); // head cut off
                for ins in inserts {
                    let _ = validate(&format!("{}{ins}{}", &t[..i], &t[i..]));
                }
                checked += 2 + inserts.len();
            }
            for w in bounds.windows(2) {
                // one character deleted
                let _ = validate(&format!("{}{}", &t[..w[0]], &t[w[1]..]));
                checked += 1;
            }
        }
        let alphabet: &[&str] = &[
            "<", ">", "/", "&", ";", "#", "x", "1", "F", "\"", "'", "=", " ", "\n", "!", "?", "-", "[", "]", "speak",
            "break", "p", "amp", "lt", ":", "a", "é", "語", "\u{1}",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let mut s = String::new();
            if rng.below(2) == 0 {
                s.push_str("<speak>");
            }
            for _ in 0..rng.below(40) {
                s.push_str(alphabet[rng.below(alphabet.len())]);
            }
            let _ = validate(&s);
            // Raw bytes, made into a string lossily.
            let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            let _ = validate(&String::from_utf8_lossy(&bytes));
            checked += 2;
        }
        assert!(checked > 40_000);
    }
}
