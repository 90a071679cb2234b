//! Shared HTTP plumbing of the core (one home for it, whatever feature uses it).

/// Percent-encodes `s` for a URL query or a form body: every byte but RFC 3986's unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`). `space_plus` writes a space as `+` (form encoding);
/// otherwise as `%20` (what SigV4's canonical query expects).
pub fn percent_encode(s: &str, space_plus: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' if space_plus => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn encodes_all_but_unreserved() {
        assert_eq!(percent_encode("a b+c/=~", true), "a+b%2Bc%2F%3D~");
        assert_eq!(percent_encode("a b+c/=~", false), "a%20b%2Bc%2F%3D~");
        assert_eq!(percent_encode("é", false), "%C3%A9");
    }
}
