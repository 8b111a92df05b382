//! The command parser (RFC 5804 §4), sans I/O: bytes in, whole commands out. A command is
//! an atom followed by atoms, quoted strings and literals (`{n+}` and, as Pigeonhole also
//! accepts, `{n}`; neither waits for a continuation). A literal's size is checked when its
//! header is read, before any of its bytes: over the cap, its bytes are counted and dropped
//! as they come (the command then fails with `QUOTA/MAXSIZE`); absurdly over it, the
//! session ends at once. Nothing unbounded is ever buffered.

/// One argument of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A bare word (`PLAIN`, a number).
    Atom(String),
    /// A quoted string or a literal's bytes.
    Str(Vec<u8>),
}

impl Arg {
    /// The argument as a string value: quoted strings and literals only (RFC 5804 §4).
    pub fn string(&self) -> Option<&[u8]> {
        match self {
            Arg::Str(bytes) => Some(bytes),
            Arg::Atom(_) => None,
        }
    }

    /// The argument as a number: an atom of digits (RFC 5804 `number`, < 2^32).
    pub fn number(&self) -> Option<u64> {
        match self {
            Arg::Atom(a) if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => {
                a.parse().ok().filter(|n| *n <= u64::from(u32::MAX))
            }
            _ => None,
        }
    }
}

/// A whole command: its name, upper-cased, and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub args: Vec<Arg>,
}

/// What the parser made of the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A whole command.
    Command(Command),
    /// A whole command line that is not valid; it was consumed, the session goes on.
    Invalid(&'static str),
    /// A whole command whose literal was over the size cap; its bytes were dropped.
    TooLarge,
    /// The stream cannot be followed any more (line too long, absurd literal): end the
    /// session.
    Fatal(&'static str),
}

/// Size caps the session sets (they change with authentication).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of command text, literals excluded.
    pub max_line: usize,
    /// Largest literal kept; a larger one is dropped and the command fails.
    pub max_literal: u64,
    /// Largest literal dropped byte by byte; a larger one ends the session.
    pub max_skip: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading command text.
    Text,
    /// Reading a literal of this many more bytes, kept.
    Literal(usize),
    /// Dropping a literal of this many more bytes.
    Skip(u64),
}

/// The parser: holds the arguments of the command being read across calls.
#[derive(Debug)]
pub struct Parser {
    pub limits: Limits,
    /// The next line is a client's response to an AUTHENTICATE challenge: strings only,
    /// returned as a [`Command`] with an empty name.
    pub data_line: bool,
    state: State,
    args: Vec<Arg>,
    literal: Vec<u8>,
    /// Command text read so far (for `max_line`).
    text_len: usize,
    /// The command had a literal over the cap.
    too_large: bool,
    /// The command is invalid; the rest of it is read and dropped.
    invalid: Option<&'static str>,
}

impl Parser {
    /// A parser with these caps.
    pub fn new(limits: Limits) -> Self {
        Parser {
            limits,
            data_line: false,
            state: State::Text,
            args: Vec::new(),
            literal: Vec::new(),
            text_len: 0,
            too_large: false,
            invalid: None,
        }
    }

    /// Whether a command has started (bytes of it were consumed): the session then gives
    /// it the command timeout instead of the idle timeout.
    pub fn in_command(&self) -> bool {
        self.text_len > 0 || !self.args.is_empty() || self.state != State::Text
    }

    /// Consumes what it can of `buf` (from its front) and says what it found.
    pub fn parse(&mut self, buf: &mut Vec<u8>) -> Parsed {
        loop {
            match self.state {
                State::Skip(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    buf.drain(..n);
                    let left = left - n as u64;
                    if left > 0 {
                        self.state = State::Skip(left);
                        return Parsed::Incomplete;
                    }
                    self.state = State::Text;
                }
                State::Literal(left) => {
                    let n = left.min(buf.len());
                    self.literal.extend(buf.drain(..n));
                    if left > n {
                        self.state = State::Literal(left - n);
                        return Parsed::Incomplete;
                    }
                    self.args.push(Arg::Str(std::mem::take(&mut self.literal)));
                    self.state = State::Text;
                }
                State::Text => {
                    let Some(lf) = buf.iter().position(|b| *b == b'\n') else {
                        if self.text_len + buf.len() > self.limits.max_line {
                            return self.fatal("line too long");
                        }
                        return Parsed::Incomplete;
                    };
                    self.text_len += lf + 1;
                    if self.text_len > self.limits.max_line {
                        return self.fatal("line too long");
                    }
                    let mut line: Vec<u8> = buf.drain(..=lf).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    match self.tokenize(&line) {
                        Ok(None) => return self.finish(),
                        Ok(Some(size)) => {
                            if size > self.limits.max_skip {
                                return self.fatal("literal too large");
                            }
                            if size > self.limits.max_literal || self.invalid.is_some() {
                                self.too_large |= self.invalid.is_none();
                                self.state = State::Skip(size);
                            } else {
                                // Checked against max_literal just above.
                                let size = usize::try_from(size).unwrap_or(usize::MAX);
                                self.literal = Vec::with_capacity(size.min(64 * 1024));
                                self.state = State::Literal(size);
                            }
                        }
                        Err(why) => {
                            // The rest of the command (a literal announced at its end)
                            // still has to be read past.
                            self.invalid.get_or_insert(why);
                            if let Some(size) = literal_header(&line) {
                                if size > self.limits.max_skip {
                                    return self.fatal("literal too large");
                                }
                                self.state = State::Skip(size);
                            } else {
                                return self.finish();
                            }
                        }
                    }
                }
            }
        }
    }

    fn fatal(&mut self, why: &'static str) -> Parsed {
        self.reset();
        Parsed::Fatal(why)
    }

    fn reset(&mut self) {
        self.state = State::Text;
        self.args.clear();
        self.literal = Vec::new();
        self.text_len = 0;
        self.too_large = false;
        self.invalid = None;
    }

    /// The command ended with this line.
    fn finish(&mut self) -> Parsed {
        let args = std::mem::take(&mut self.args);
        let (too_large, invalid) = (self.too_large, self.invalid.take());
        self.reset();
        if let Some(why) = invalid {
            return Parsed::Invalid(why);
        }
        if too_large {
            return Parsed::TooLarge;
        }
        if self.data_line {
            return Parsed::Command(Command {
                name: String::new(),
                args,
            });
        }
        let mut args = args.into_iter();
        match args.next() {
            Some(Arg::Atom(name)) => Parsed::Command(Command {
                name: name.to_ascii_uppercase(),
                args: args.collect(),
            }),
            Some(Arg::Str(_)) => Parsed::Invalid("a command starts with its name"),
            None => Parsed::Invalid("empty command"),
        }
    }

    /// Splits one line of command text into arguments (appended); `Some(n)`: the line ends
    /// with a literal header of `n` bytes.
    fn tokenize(&mut self, line: &[u8]) -> Result<Option<u64>, &'static str> {
        let mut i = 0;
        // After a literal, the command goes on with a space (or ends right there).
        if !self.args.is_empty() {
            if line.is_empty() {
                return Ok(None);
            }
            if line[0] != b' ' {
                return Err("expected a space after a literal");
            }
            i = 1;
        }
        loop {
            if i >= line.len() {
                if self.args.is_empty() && !self.data_line {
                    return Err("empty command");
                }
                return Ok(None);
            }
            match line[i] {
                b'"' => {
                    let mut value = Vec::new();
                    i += 1;
                    loop {
                        match line.get(i) {
                            None => return Err("unterminated quoted string"),
                            Some(b'"') => break,
                            Some(b'\\') => match line.get(i + 1) {
                                Some(c @ (b'"' | b'\\')) => {
                                    value.push(*c);
                                    i += 1;
                                }
                                _ => return Err("bad escape in a quoted string"),
                            },
                            Some(0) => return Err("NUL in a quoted string"),
                            Some(c) => value.push(*c),
                        }
                        i += 1;
                    }
                    // RFC 5804 §4: quoted strings hold at most 1024 octets.
                    if value.len() > 1024 {
                        return Err("quoted string over 1024 octets: send a literal");
                    }
                    self.args.push(Arg::Str(value));
                    i += 1;
                }
                b'{' => {
                    let end = line[i..]
                        .iter()
                        .position(|b| *b == b'}')
                        .map(|p| i + p)
                        .ok_or("bad literal")?;
                    if end + 1 != line.len() {
                        return Err("a literal's header ends the line");
                    }
                    let digits = line[i + 1..end]
                        .strip_suffix(b"+")
                        .unwrap_or(&line[i + 1..end]);
                    if digits.is_empty()
                        || digits.len() > 19
                        || !digits.iter().all(u8::is_ascii_digit)
                    {
                        return Err("bad literal size");
                    }
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| d.parse().ok())
                        .ok_or("bad literal size")?;
                    return Ok(Some(size));
                }
                _ => {
                    let start = i;
                    while i < line.len() && is_atom_char(line[i]) {
                        i += 1;
                    }
                    if i == start {
                        return Err("unexpected character");
                    }
                    // Only ASCII atom characters got here.
                    let atom = String::from_utf8_lossy(&line[start..i]).into_owned();
                    self.args.push(Arg::Atom(atom));
                }
            }
            match line.get(i) {
                None => continue,
                Some(b' ') => i += 1,
                Some(_) => return Err("expected a space between arguments"),
            }
        }
    }
}

/// RFC 5804 `atom`: printable ASCII but specials.
fn is_atom_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"(){}\"\\%*]".contains(&b)
}

/// The size of a literal announced at the end of a line that did not parse, so its bytes
/// can still be read past.
fn literal_header(line: &[u8]) -> Option<u64> {
    let rest = line.strip_suffix(b"}")?;
    let open = rest.iter().rposition(|b| *b == b'{')?;
    let digits = &rest[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_line: 200,
            max_literal: 100,
            max_skip: 1000,
        }
    }

    /// Feeds `input` in pieces cut at `cut`; every result but `Incomplete`.
    fn run(input: &[u8], cut: usize) -> Vec<Parsed> {
        let mut parser = Parser::new(limits());
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in [&input[..cut], &input[cut..]] {
            buf.extend_from_slice(piece);
            loop {
                match parser.parse(&mut buf) {
                    Parsed::Incomplete => break,
                    other => out.push(other),
                }
            }
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        out
    }

    fn every_cut(input: &[u8]) -> Vec<Parsed> {
        let whole = run(input, input.len());
        for cut in 0..input.len() {
            assert_eq!(run(input, cut), whole, "cut at {cut}");
        }
        whole
    }

    fn cmd(name: &str, args: Vec<Arg>) -> Parsed {
        Parsed::Command(Command {
            name: name.into(),
            args,
        })
    }

    #[test]
    fn commands_split_at_every_byte() {
        let input = b"capability\r\nPUTSCRIPT \"a b\" {5+}\r\nkeep;\r\nAUTHENTICATE \"PLAIN\" {3}\r\nx\0y \"q\\\"\"\r\nnoop\n";
        assert_eq!(
            every_cut(input),
            vec![
                cmd("CAPABILITY", vec![]),
                cmd(
                    "PUTSCRIPT",
                    vec![Arg::Str(b"a b".to_vec()), Arg::Str(b"keep;".to_vec())]
                ),
                cmd(
                    "AUTHENTICATE",
                    vec![
                        Arg::Str(b"PLAIN".to_vec()),
                        Arg::Str(b"x\0y".to_vec()),
                        Arg::Str(b"q\"".to_vec())
                    ]
                ),
                cmd("NOOP", vec![]),
            ]
        );
    }

    #[test]
    fn oversized_literal_is_dropped_then_refused() {
        let mut input = b"PUTSCRIPT \"a\" {500+}\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 500));
        input.extend_from_slice(b"\r\nNOOP\r\n");
        assert_eq!(
            every_cut(&input),
            vec![Parsed::TooLarge, cmd("NOOP", vec![])]
        );
    }

    #[test]
    fn absurd_literal_and_long_line_are_fatal() {
        let mut parser = Parser::new(limits());
        let mut buf = b"PUTSCRIPT \"a\" {2147483648+}\r\n".to_vec();
        assert_eq!(parser.parse(&mut buf), Parsed::Fatal("literal too large"));
        let mut buf = vec![b'a'; 300];
        assert_eq!(parser.parse(&mut buf), Parsed::Fatal("line too long"));
    }

    #[test]
    fn invalid_lines_are_consumed() {
        assert_eq!(
            every_cut(b"\"x\"\r\n\r\nNOOP \"unterminated\r\nNOOP x\"y {3+}\r\nabc\r\nLOGOUT\r\n"),
            vec![
                Parsed::Invalid("a command starts with its name"),
                Parsed::Invalid("empty command"),
                Parsed::Invalid("unterminated quoted string"),
                Parsed::Invalid("expected a space between arguments"),
                cmd("LOGOUT", vec![]),
            ]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(Arg::Atom("123".into()).number(), Some(123));
        assert_eq!(Arg::Atom("99999999999".into()).number(), None);
        assert_eq!(Arg::Str(b"1".to_vec()).number(), None);
    }
}
