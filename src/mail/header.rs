//! The one header walker: the top-level header fields of a message, read the same way by
//! every part of sievegate that looks at headers of mail it did not write (the abuse
//! report's `Received` walk, the `text/rfc822-headers` part of notices and reports, the
//! quarantine listing).
//!
//! It yields only well-formed field lines (RFC 5322 §2.2: `name:` with a name of printable
//! ASCII other than `:`, then the value, then folded continuation lines starting with a
//! space or tab) and stops at the first line that is not one: the blank line before the
//! body, a body without a blank line, binary junk, a NUL or a bare CR, a line longer than
//! RFC 5322's 998 octets. It also stops before a field that would take the walk past
//! [`Limits`] (64 KiB and 1000 fields by default), so a hostile message can never push its
//! body, or megabytes of "headers", into what we send. A field is never cut: what the walk
//! yields is always a prefix of the message made of whole fields.

/// Most bytes of header fields the walk yields (whole fields only).
pub const MAX_BYTES: usize = 64 * 1024;
/// Most fields the walk yields.
pub const MAX_FIELDS: usize = 1000;
/// Longest line, without its line end (RFC 5322 §2.1.1).
pub const MAX_LINE: usize = 998;

/// How far the walk may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of whole fields (line ends included).
    pub max_bytes: usize,
    /// Number of fields.
    pub max_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: MAX_BYTES,
            max_fields: MAX_FIELDS,
        }
    }
}

/// Why the walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// At the empty line that separates the header section from the body.
    Blank,
    /// At the end of the input, after the last field.
    Eof,
    /// At a line that is not a field (nor a continuation of one): body without a blank
    /// line, binary, NUL, bare CR, an over-long line.
    NotAField,
    /// Before a field that would pass [`Limits`].
    Limit,
}

/// One header field as it appears in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field name, as written (no trailing colon).
    pub name: &'a [u8],
    /// The whole field: the name, the colon, the value with its folding and line ends.
    pub raw: &'a [u8],
}

impl<'a> Field<'a> {
    /// The value as written: everything after the colon, folding and line ends included.
    pub fn raw_value(&self) -> &'a [u8] {
        &self.raw[self.name.len() + 1..]
    }

    /// True when the name is `name` (ASCII case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The value unfolded, with every run of white space (folding included) as one space
    /// and no leading or trailing space; non-UTF-8 bytes become U+FFFD.
    pub fn unfolded(&self) -> String {
        let value = String::from_utf8_lossy(self.raw_value());
        value.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// The walker: an iterator of [`Field`]s; [`Walk::end`] and [`Walk::len`] say where it
/// stopped once it returned `None`.
#[derive(Debug, Clone)]
pub struct Walk<'a> {
    input: &'a [u8],
    /// Offset of the next field's first byte.
    pos: usize,
    fields: usize,
    limits: Limits,
    end: Option<End>,
}

/// Walks the top-level header fields of `message` with the default [`Limits`].
pub fn fields(message: &[u8]) -> Walk<'_> {
    Walk::new(message, Limits::default())
}

/// The well-formed header fields at the top of `message` (default [`Limits`]), as one
/// slice of the input: whole fields, no blank line, never a body byte.
pub fn section(message: &[u8]) -> &[u8] {
    let mut walk = fields(message);
    walk.by_ref().for_each(drop);
    &message[..walk.len()]
}

impl<'a> Walk<'a> {
    /// A walk over `input` within `limits`.
    pub fn new(input: &'a [u8], limits: Limits) -> Self {
        Walk {
            input,
            pos: 0,
            fields: 0,
            limits,
            end: None,
        }
    }

    /// Why the walk ended; `None` while it has not.
    pub fn end(&self) -> Option<End> {
        self.end
    }

    /// Bytes of the input the fields yielded so far take (a prefix of the input).
    pub fn len(&self) -> usize {
        self.pos
    }

    /// True when no field was yielded (yet).
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    fn stop(&mut self, end: End) -> Option<Field<'a>> {
        self.end = Some(end);
        None
    }
}

/// The line starting at `at`: (its content without the line end, the offset after it).
/// `None` for a line with a bare CR, a NUL, or longer than [`MAX_LINE`].
fn line(input: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = &input[at..];
    let (with_end, next) = match rest.iter().position(|&b| b == b'\n') {
        Some(p) => (&rest[..p], at + p + 1),
        None => (rest, input.len()),
    };
    let content = with_end.strip_suffix(b"\r").unwrap_or(with_end);
    if content.len() > MAX_LINE || content.iter().any(|&b| b == b'\r' || b == 0) {
        return None;
    }
    Some((content, next))
}

/// The name of a field line: `name:` with 1..=[`MAX_LINE`] printable ASCII bytes other
/// than `:` (RFC 5322 §2.2).
fn field_name(content: &[u8]) -> Option<&[u8]> {
    let colon = content.iter().position(|&b| b == b':')?;
    let name = &content[..colon];
    (!name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))).then_some(name)
}

impl<'a> Iterator for Walk<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        if self.end.is_some() {
            return None;
        }
        let input = self.input;
        let start = self.pos;
        if start >= input.len() {
            return self.stop(End::Eof);
        }
        let Some((first, mut next)) = line(input, start) else {
            return self.stop(End::NotAField);
        };
        if first.is_empty() {
            return self.stop(End::Blank);
        }
        // A last line without a line end is not a complete field (a cut message).
        if input[next - 1] != b'\n' {
            return self.stop(End::NotAField);
        }
        let Some(name) = field_name(first) else {
            return self.stop(End::NotAField);
        };
        // Continuation lines: they start with WSP and are well-formed lines themselves; a
        // malformed one ends the walk before this field (it might be the body).
        while next < input.len() && matches!(input[next], b' ' | b'\t') {
            match line(input, next) {
                Some((_, after)) if input[after - 1] == b'\n' => next = after,
                _ => return self.stop(End::NotAField),
            }
        }
        if next > self.limits.max_bytes || self.fields >= self.limits.max_fields {
            return self.stop(End::Limit);
        }
        self.pos = next;
        self.fields += 1;
        Some(Field {
            name,
            raw: &input[start..next],
        })
    }
}

#[cfg(test)]
mod tests;
