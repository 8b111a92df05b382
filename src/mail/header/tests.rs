use super::*;

/// The 68-byte EICAR test string (a harmless signature every scanner detects).
const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

fn names(input: &[u8]) -> (Vec<String>, usize, Option<End>) {
    let mut walk = fields(input);
    let names = walk
        .by_ref()
        .map(|f| String::from_utf8_lossy(f.name).into_owned())
        .collect();
    (names, walk.len(), walk.end())
}

#[test]
fn walker_table() {
    type Case = (
        &'static str,
        &'static [u8],
        &'static [&'static str],
        usize,
        End,
    );
    let cases: &[Case] = &[
        (
            "crlf with body",
            b"A: 1\r\nB: 2\r\n\r\nbody",
            &["A", "B"],
            12,
            End::Blank,
        ),
        (
            "lf with body",
            b"A: 1\nB: 2\n\nbody\n",
            &["A", "B"],
            10,
            End::Blank,
        ),
        (
            "folded",
            b"A: 1\r\n\t2\r\n 3\r\nB: x\r\n\r\n",
            &["A", "B"],
            20,
            End::Blank,
        ),
        ("headers only", b"A: 1\r\n", &["A"], 6, End::Eof),
        (
            "last line without line end",
            b"A: 1\r\nB: 2",
            &["A"],
            6,
            End::NotAField,
        ),
        ("empty", b"", &[], 0, End::Eof),
        ("blank first", b"\r\nbody", &[], 0, End::Blank),
        (
            "no blank line: the body is not a field",
            b"A: 1\r\nthis is the body\r\nB: 2\r\n",
            &["A"],
            6,
            End::NotAField,
        ),
        (
            "body starting with a colon-less line",
            b"hello\r\n",
            &[],
            0,
            End::NotAField,
        ),
        (
            "continuation first is not a field",
            b" A: 1\r\n",
            &[],
            0,
            End::NotAField,
        ),
        (
            "space before colon (obsolete) ends it",
            b"A: 1\r\nB : 2\r\n",
            &["A"],
            6,
            End::NotAField,
        ),
        ("empty name", b": x\r\n", &[], 0, End::NotAField),
        (
            "NUL in a value",
            b"A: 1\r\nB: \x002\r\nC: 3\r\n",
            &["A"],
            6,
            End::NotAField,
        ),
        (
            "bare CR in a value",
            b"A: 1\r\nB: x\ry\r\n",
            &["A"],
            6,
            End::NotAField,
        ),
        (
            "bad continuation ends before its field",
            b"A: 1\r\nB: 2\r\n \x00\r\n",
            &["A"],
            6,
            End::NotAField,
        ),
        (
            "binary",
            b"\x7fELF\x02\x01\x01\x00\x00:\r\n",
            &[],
            0,
            End::NotAField,
        ),
        (
            "8-bit value is kept (RFC 6532)",
            "Subject: caf\u{e9}\r\n".as_bytes(),
            &["Subject"],
            16,
            End::Eof,
        ),
        (
            "8-bit name is not a field",
            "Subj\u{e9}ct: x\r\n".as_bytes(),
            &[],
            0,
            End::NotAField,
        ),
    ];
    for (what, input, want, len, end) in cases {
        let (got, got_len, got_end) = names(input);
        assert_eq!(got, *want, "{what}");
        assert_eq!(got_len, *len, "{what}");
        assert_eq!(got_end, Some(*end), "{what}");
        assert_eq!(section(input), &input[..*len], "{what}");
    }
}

#[test]
fn over_long_line_ends_the_walk() {
    let mut input = b"A: 1\r\nB: ".to_vec();
    input.extend(std::iter::repeat_n(b'x', MAX_LINE));
    input.extend_from_slice(b"\r\n");
    assert_eq!(
        names(&input),
        (vec!["A".to_string()], 6, Some(End::NotAField))
    );
    let mut ok = b"B: ".to_vec();
    ok.extend(std::iter::repeat_n(b'x', MAX_LINE - 3));
    ok.extend_from_slice(b"\r\n");
    assert_eq!(names(&ok).1, ok.len());
}

#[test]
fn ten_megabytes_of_header_fields_are_capped() {
    let mut input = Vec::new();
    let mut i = 0;
    while input.len() < 10 * 1024 * 1024 {
        input.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(100)).as_bytes());
        i += 1;
    }
    input.extend_from_slice(b"\r\nbody");
    let out = section(&input);
    assert!(out.len() <= MAX_BYTES, "{}", out.len());
    assert!(out.len() > MAX_BYTES - 200);
    assert!(out.ends_with(b"\r\n"));
    let mut walk = fields(&input);
    assert!(walk.by_ref().count() > 500);
    assert_eq!(walk.end(), Some(End::Limit));
    // One folded field of 10 MB: not cut, left out whole.
    let mut one = b"A: 1\r\nB: x\r\n".to_vec();
    while one.len() < 10 * 1024 * 1024 {
        one.extend_from_slice(b"\tmore folded text\r\n");
    }
    assert_eq!(section(&one), b"A: 1\r\n");
    // The field count is capped too.
    let many = "A: 1\r\n".repeat(MAX_FIELDS + 5);
    assert_eq!(fields(many.as_bytes()).count(), MAX_FIELDS);
    let tight = Limits {
        max_bytes: 11,
        max_fields: 10,
    };
    assert_eq!(Walk::new(b"A: 1\r\nB: 2\r\n", tight).count(), 1);
}

#[test]
fn a_virus_inside_a_header_field_is_a_field() {
    // The walker keeps field lines, whatever their value: a signature in a header field
    // is still a header. Callers that send headers scan them (report::scrub).
    let input = format!("Subject: hi\r\nX-Payload: {EICAR}\r\n\r\nbody");
    let (names, _, end) = names(input.as_bytes());
    assert_eq!(names, ["Subject", "X-Payload"]);
    assert_eq!(end, Some(End::Blank));
    // A virus in the body of a message without a blank line never comes through.
    let input = format!("Subject: hi\r\n{EICAR}\r\n");
    assert_eq!(section(input.as_bytes()), b"Subject: hi\r\n");
}

#[test]
fn field_values() {
    let input = b"Received: from a (a [192.0.2.1])\r\n\tby mx (Postfix);\r\n\t Sat, 1 Jan 2000\r\nSUBJECT:x\r\n";
    let got: Vec<Field> = fields(input).collect();
    assert!(got[0].is("received"));
    assert_eq!(
        got[0].unfolded(),
        "from a (a [192.0.2.1]) by mx (Postfix); Sat, 1 Jan 2000"
    );
    assert!(got[1].is("Subject"));
    assert_eq!(got[1].raw_value(), b"x\r\n");
    assert_eq!(got[1].unfolded(), "x");
}
