//! How an example's shown output is compared with what the command printed.
//!
//! Three shapes of output, tried in this order:
//! - an HTTP head (`curl -i`): the shown output starts with `HTTP/`. Its header lines must
//!   appear in the printed head in the same order; a line `...` lets other headers be printed
//!   too (without it the head must have exactly the shown lines). What follows the head is
//!   compared by the rules below.
//! - JSON: the shown output parses as a sequence of JSON values (one object, or one per line)
//!   in which `...` may stand for elided parts. Both sides are parsed and compared value by
//!   value; objects keep their member order, and the shown members must come in the order the
//!   command printed them.
//! - text: line by line; `...` inside a line matches any text, a line that is only `...`
//!   matches any number of lines.
//!
//! Elisions in JSON: `...` as an object member (`{"name":"jobs",...}`) allows members not
//! shown; `...` as a value (`"oldest_ready_age_ms":...`) is any value; `...` as an array
//! element is any number of elements; `...` inside a string (`"127.0.0.1:..."`) matches any
//! text there.
//!
//! Values that change from run to run are written as a reader would see them, and match any
//! value of the same shape: a number of at least 10^12 (a time in epoch milliseconds) matches
//! any such number; a generated string (a UUID, a hex string of at least 12 digits such as a
//! receipt or a token id, a `wharf_...` token) matches any string of the same shape. The
//! first match binds the shown value to the printed one: from then on the shown value is
//! replaced by the printed one in commands and shown outputs, so an example can use the
//! receipt or id an earlier example printed, and a later output must show the same one.

use std::collections::HashSet;

/// A JSON value, or a pattern of one when parsed from a shown output. Objects keep order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    /// Members in order, and whether `...` allowed members not shown.
    Object(Vec<(String, Json)>, bool),
    /// `...`: any value; inside an array, any number of elements.
    Any,
}

/// Shown values bound to the values a run printed (see the module header).
#[derive(Debug, Default, Clone)]
pub struct Bindings {
    pairs: Vec<(String, String)>,
    printed: HashSet<String>,
}

impl Bindings {
    /// `text` with every bound shown value replaced by its printed value.
    pub fn apply(&self, text: &str) -> String {
        let mut text = text.to_string();
        // Longest first: a shown token contains its shown id, bound on its own.
        let mut pairs: Vec<&(String, String)> = self.pairs.iter().collect();
        pairs.sort_by_key(|(shown, _)| std::cmp::Reverse(shown.len()));
        for (shown, printed) in pairs {
            text = text.replace(shown.as_str(), printed);
        }
        text
    }

    fn bind(&mut self, shown: &str, printed: &str) -> bool {
        if self.printed.contains(shown) || self.pairs.iter().any(|(s, _)| s == shown) {
            return false;
        }
        self.pairs.push((shown.to_string(), printed.to_string()));
        self.printed.insert(printed.to_string());
        true
    }
}

/// Compares what a command printed with what the doc shows; `Err` says where they differ.
pub fn compare(shown: &str, printed: &str, bindings: &mut Bindings) -> Result<(), String> {
    let shown = shown.trim_end();
    let printed = printed.trim_end();
    if shown.starts_with("HTTP/") {
        return compare_http(shown, printed, bindings);
    }
    if let Some(pattern) = parse_sequence(shown, true) {
        let Some(values) = parse_sequence(printed, false) else {
            return Err("the doc shows JSON, the command printed something else".into());
        };
        if pattern.len() != values.len() {
            return Err(format!(
                "the doc shows {} JSON values, the command printed {}",
                pattern.len(),
                values.len()
            ));
        }
        let mut trial = bindings.clone();
        for (index, (pattern, value)) in pattern.iter().zip(&values).enumerate() {
            match_value(pattern, value, &format!("value {}", index + 1), &mut trial)?;
        }
        *bindings = trial;
        return Ok(());
    }
    let shown_lines: Vec<&str> = shown.lines().collect();
    let printed_lines: Vec<&str> = printed.lines().map(|l| l.trim_end_matches('\r')).collect();
    if match_lines(&shown_lines, &printed_lines) {
        Ok(())
    } else {
        Err("the text differs".into())
    }
}

/// `curl -i` output: the head's lines (CRLF), a blank line, the body.
fn compare_http(shown: &str, printed: &str, bindings: &mut Bindings) -> Result<(), String> {
    let shown_lines: Vec<&str> = shown.lines().collect();
    let head_end = shown_lines
        .iter()
        .position(|l| l.is_empty() || l.starts_with('{') || l.starts_with('['))
        .unwrap_or(shown_lines.len());
    let shown_head = &shown_lines[..head_end];
    let shown_body = shown_lines[head_end..].join("\n");
    let printed = printed.replace("\r\n", "\n");
    let (printed_head, printed_body) = printed.split_once("\n\n").unwrap_or((&printed, ""));
    let printed_head: Vec<&str> = printed_head.lines().collect();
    let open = shown_head.contains(&"...");
    let wanted: Vec<&str> = shown_head.iter().copied().filter(|l| *l != "...").collect();
    let mut at = 0;
    for line in &wanted {
        match printed_head[at..].iter().position(|p| glob(line, p)) {
            Some(found) if open || found == 0 => at += found + 1,
            _ => {
                return Err(format!(
                    "the head has no line `{line}` where the doc shows it"
                ))
            }
        }
    }
    if !open && at != printed_head.len() {
        return Err("the head has lines the doc does not show (add a `...` line)".into());
    }
    if shown_body.trim().is_empty() {
        return if printed_body.trim().is_empty() {
            Ok(())
        } else {
            Err("the doc shows no body, the command printed one".into())
        };
    }
    compare(&shown_body, printed_body, bindings)
}

fn match_lines(shown: &[&str], printed: &[&str]) -> bool {
    match shown.split_first() {
        None => printed.is_empty(),
        Some((&"...", rest)) => (0..=printed.len()).any(|skip| match_lines(rest, &printed[skip..])),
        Some((line, rest)) => printed
            .split_first()
            .is_some_and(|(first, others)| glob(line, first) && match_lines(rest, others)),
    }
}

/// `pattern` with `...` matching any text (possibly empty).
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(found) => rest = &rest[found + part.len()..],
            None => return false,
        }
    }
    true
}

fn match_value(
    pattern: &Json,
    value: &Json,
    path: &str,
    bindings: &mut Bindings,
) -> Result<(), String> {
    let differs = || {
        Err(format!(
            "at {path}: the doc shows {}, the command printed {}",
            render(pattern),
            render(value)
        ))
    };
    match (pattern, value) {
        (Json::Any, _) => Ok(()),
        (Json::String(shown), Json::String(printed)) => {
            if shown == printed || (shown.contains("...") && glob(shown, printed)) {
                return Ok(());
            }
            let same_shape = generated_shape(shown).is_some()
                && generated_shape(shown) == generated_shape(printed);
            if same_shape && bindings.bind(shown, printed) {
                Ok(())
            } else {
                differs()
            }
        }
        (Json::Number(shown), Json::Number(printed)) => {
            let both_times = *shown >= 1e12 && *printed >= 1e12;
            if shown == printed || both_times {
                Ok(())
            } else {
                differs()
            }
        }
        (Json::Array(shown), Json::Array(printed)) => {
            match_elements(shown, printed, path, 0, bindings).or_else(|_| differs())
        }
        (Json::Object(shown, open), Json::Object(printed, _)) => {
            match_members(shown, *open, printed, path, bindings)
        }
        _ if pattern == value => Ok(()),
        _ => differs(),
    }
}

fn match_members(
    shown: &[(String, Json)],
    open: bool,
    printed: &[(String, Json)],
    path: &str,
    bindings: &mut Bindings,
) -> Result<(), String> {
    let mut at = 0;
    for (key, pattern) in shown {
        let Some(found) = printed.iter().position(|(k, _)| k == key) else {
            return Err(format!("at {path}: no member `{key}`"));
        };
        if found < at {
            return Err(format!(
                "at {path}: member `{key}` comes earlier in the output than the doc shows it"
            ));
        }
        match_value(
            pattern,
            &printed[found].1,
            &format!("{path}.{key}"),
            bindings,
        )?;
        at = found + 1;
    }
    if !open && printed.len() != shown.len() {
        let extra: Vec<&str> = printed
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !shown.iter().any(|(s, _)| s == k))
            .collect();
        return Err(format!(
            "at {path}: members the doc does not show: {extra:?} (add them, or `...`)"
        ));
    }
    Ok(())
}

fn match_elements(
    shown: &[Json],
    printed: &[Json],
    path: &str,
    index: usize,
    bindings: &mut Bindings,
) -> Result<(), String> {
    match shown.split_first() {
        None if printed.is_empty() => Ok(()),
        None => Err(format!("at {path}: more elements than the doc shows")),
        Some((Json::Any, rest)) => {
            for skip in 0..=printed.len() {
                let mut trial = bindings.clone();
                if match_elements(rest, &printed[skip..], path, index + skip, &mut trial).is_ok() {
                    *bindings = trial;
                    return Ok(());
                }
            }
            Err(format!("at {path}: the elements differ"))
        }
        Some((first, rest)) => {
            let Some((value, others)) = printed.split_first() else {
                return Err(format!("at {path}: fewer elements than the doc shows"));
            };
            match_value(first, value, &format!("{path}[{index}]"), bindings)?;
            match_elements(rest, others, path, index + 1, bindings)
        }
    }
}

/// The kind of generated value `text` looks like, if any.
fn generated_shape(text: &str) -> Option<&'static str> {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let groups: Vec<&str> = text.split('-').collect();
    let group_lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if group_lengths == [8, 4, 4, 4, 12] && groups.iter().all(|g| hex(g)) {
        return Some("uuid");
    }
    if text.len() >= 12 && hex(text) {
        return Some("hex");
    }
    if text.starts_with("wharf_") && !text.contains(char::is_whitespace) {
        return Some("token");
    }
    None
}

fn render(value: &Json) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => format!("{s:?}"),
        Json::Array(items) => {
            let items: Vec<String> = items.iter().map(render).collect();
            format!("[{}]", items.join(","))
        }
        Json::Object(members, open) => {
            let mut parts: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{k:?}:{}", render(v)))
                .collect();
            if *open {
                parts.push("...".into());
            }
            format!("{{{}}}", parts.join(","))
        }
        Json::Any => "...".into(),
    }
}

/// Parses whitespace-separated JSON values; `patterns` allows `...`. `None` if any fails.
pub fn parse_sequence(text: &str, patterns: bool) -> Option<Vec<Json>> {
    let mut parser = Parser {
        text: text.as_bytes(),
        at: 0,
        patterns,
    };
    let mut values = Vec::new();
    loop {
        parser.skip_space();
        if parser.at == parser.text.len() {
            return (!values.is_empty()).then_some(values);
        }
        values.push(parser.value()?);
    }
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    patterns: bool,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self
            .text
            .get(self.at)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.at += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.text[self.at..].starts_with(token.as_bytes()) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Json> {
        self.skip_space();
        if self.patterns && self.eat("...") {
            return Some(Json::Any);
        }
        match *self.text.get(self.at)? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(Json::String),
            b't' if self.eat("true") => Some(Json::Bool(true)),
            b'f' if self.eat("false") => Some(Json::Bool(false)),
            b'n' if self.eat("null") => Some(Json::Null),
            _ => self.number(),
        }
    }

    fn object(&mut self) -> Option<Json> {
        self.at += 1;
        let (mut members, mut open) = (Vec::new(), false);
        if self.eat("}") {
            return Some(Json::Object(members, open));
        }
        loop {
            if self.patterns && self.eat("...") {
                open = true;
            } else {
                self.skip_space();
                let key = self.string()?;
                if !self.eat(":") {
                    return None;
                }
                members.push((key, self.value()?));
            }
            if self.eat("}") {
                return Some(Json::Object(members, open));
            }
            if !self.eat(",") {
                return None;
            }
        }
    }

    fn array(&mut self) -> Option<Json> {
        self.at += 1;
        let mut items = Vec::new();
        if self.eat("]") {
            return Some(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            if self.eat("]") {
                return Some(Json::Array(items));
            }
            if !self.eat(",") {
                return None;
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        if self.text.get(self.at) != Some(&b'"') {
            return None;
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let byte = *self.text.get(self.at)?;
            self.at += 1;
            match byte {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => self.escape(&mut out)?,
                _ => out.push(byte),
            }
        }
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let byte = *self.text.get(self.at)?;
        self.at += 1;
        let simple = match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.unicode_escape(out),
            _ => return None,
        };
        out.extend_from_slice(simple.encode_utf8(&mut [0; 4]).as_bytes());
        Some(())
    }

    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let mut unit = self.hex4()?;
        if (0xD800..0xDC00).contains(&unit) && self.eat("\\u") {
            let low = self.hex4()?;
            unit = 0x10000 + ((unit - 0xD800) << 10) + (low.checked_sub(0xDC00)?);
        }
        let character = char::from_u32(unit)?;
        out.extend_from_slice(character.encode_utf8(&mut [0; 4]).as_bytes());
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = std::str::from_utf8(self.text.get(self.at..self.at + 4)?).ok()?;
        self.at += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    fn number(&mut self) -> Option<Json> {
        let start = self.at;
        while self
            .text
            .get(self.at)
            .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
        {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.text[start..self.at]).ok()?;
        let first = text.bytes().next()?;
        if !(first == b'-' || first.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().map(Json::Number)
    }
}

#[test]
fn patterns_match_what_they_should() {
    let mut bindings = Bindings::default();
    let shown = r#"{"id":"01a201e9-feb8-7000-a8e3-4daf52a1b76a","n":1,...,"at":1795328442040}"#;
    let printed =
        r#"{"id":"01a30000-0000-7000-8000-000000000001","n":1,"x":[],"at":1800000000000}"#;
    assert_eq!(compare(shown, printed, &mut bindings), Ok(()));
    assert_eq!(
        bindings.apply("ack 01a201e9-feb8-7000-a8e3-4daf52a1b76a"),
        "ack 01a30000-0000-7000-8000-000000000001"
    );
    assert!(compare(r#"{"n":1,"id":"x"}"#, r#"{"id":"x","n":1}"#, &mut bindings).is_err());
    assert!(compare(r#"{"n":1}"#, r#"{"n":1,"m":2}"#, &mut bindings).is_err());
    assert_eq!(compare(r#"[1,...]"#, r#"[1,2,3]"#, &mut bindings), Ok(()));
    assert_eq!(
        compare("purged ...\n...", "purged 3\na\nb", &mut bindings),
        Ok(())
    );
    let head = "HTTP/1.1 204 No Content\r\ndate: now\r\n\r\n";
    assert_eq!(
        compare("HTTP/1.1 204 No Content\n...", head, &mut bindings),
        Ok(())
    );
    assert!(compare("HTTP/1.1 204 No Content", head, &mut bindings).is_err());
}
