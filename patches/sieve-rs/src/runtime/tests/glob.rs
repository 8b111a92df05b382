/*
 * SPDX-FileCopyrightText: 2020 Stalwart Labs Ltd <hello@stalw.art>
 *
 * SPDX-License-Identifier: AGPL-3.0-only OR LicenseRef-SEL
 */

use std::char::REPLACEMENT_CHARACTER;

use crate::MAX_MATCH_VARIABLES;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobPattern {
    pattern: Vec<PatternChar>,
    to_lower: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternChar {
    WildcardMany { num: usize, match_pos: usize },
    WildcardSingle { match_pos: usize },
    Char { char: char, match_pos: usize },
}

impl GlobPattern {
    pub fn compile(pattern: &str, to_lower: bool) -> Self {
        let mut chars = Vec::new();
        let mut is_escaped = false;
        let mut str = pattern.chars().peekable();

        while let Some(char) = str.next() {
            match char {
                '*' if !is_escaped => {
                    let mut num = 1;
                    while let Some('*') = str.peek() {
                        num += 1;
                        str.next();
                    }
                    chars.push(PatternChar::WildcardMany { num, match_pos: 0 });
                }
                '?' if !is_escaped => {
                    chars.push(PatternChar::WildcardSingle { match_pos: 0 });
                }
                '\\' if !is_escaped => {
                    is_escaped = true;
                    continue;
                }
                _ => {
                    if is_escaped {
                        is_escaped = false;
                    }
                    if to_lower && char.is_uppercase() {
                        for char in char.to_lowercase() {
                            chars.push(PatternChar::Char { char, match_pos: 0 });
                        }
                    } else {
                        chars.push(PatternChar::Char { char, match_pos: 0 });
                    }
                }
            }
        }

        GlobPattern {
            pattern: chars,
            to_lower,
        }
    }

    /// sievegate patch (PATCHES.md #5): match without captures in linear time for the
    /// common shapes. The pattern is split at each `*` into segments; the first segment is
    /// anchored at the start, the last at the end, and each middle segment is taken at its
    /// leftmost place (a leftmost match never prevents a later segment from matching, so
    /// this is exact). Segments without `?` are found with `str::find` (Two-Way, linear);
    /// the rest try each start position and check the deadline as they go. The former
    /// single-backtrack loop (still used by `capture`) costs O(value × pattern): `*a…b`
    /// against a 1 MB header took seconds per test.
    pub fn matches(&self, value: &str) -> bool {
        let lowered;
        let value = if self.to_lower {
            lowered = value.to_lowercase();
            lowered.as_str()
        } else {
            value
        };
        let mut segments = self
            .pattern
            .split(|pc| matches!(pc, PatternChar::WildcardMany { .. }));
        let Some(first) = segments.next() else {
            return value.is_empty();
        };
        let segments: Vec<&[PatternChar]> = segments.collect();
        let Some((last, middle)) = segments.split_last() else {
            // No `*`: the whole value must match the one segment.
            return match_at(first, value, 0) == Some(value.len());
        };
        let Some(mut pos) = match_at(first, value, 0) else {
            return false;
        };
        // The last segment is as many characters long as it has pattern items.
        let Some(tail) = start_of_last_chars(value, last.len()) else {
            return false;
        };
        if tail < pos || match_at(last, value, tail) != Some(value.len()) {
            return false;
        }
        let mut ticker = crate::runtime::deadline::Ticker::default();
        for segment in middle {
            match find(segment, value, pos, tail, &mut ticker) {
                Some(end) => pos = end,
                None => return false,
            }
        }
        true
    }

    pub fn capture(
        mut self,
        value_: &str,
        capture_positions: u64,
        captured_values: &mut Vec<(usize, String)>,
    ) -> bool {
        let value = if self.to_lower {
            let mut value = Vec::with_capacity(value_.len());
            for char in value_.chars() {
                if char.is_uppercase() {
                    for (pos, lowerchar) in char.to_lowercase().enumerate() {
                        value.push((
                            lowerchar,
                            if pos == 0 {
                                char
                            } else {
                                REPLACEMENT_CHARACTER
                            },
                        ));
                    }
                } else {
                    value.push((char, char));
                }
            }
            value
        } else {
            value_.chars().map(|char| (char, char)).collect::<Vec<_>>()
        };

        let mut px = 0;
        let mut nx = 0;
        let mut next_px = 0;
        let mut next_nx = 0;
        // sievegate patch (PATCHES.md #4): this loop is O(value × pattern); give up at the
        // deadline (Context::run then reports TimeLimitReached).
        let mut ticker = crate::runtime::deadline::Ticker::default();

        while px < self.pattern.len() || nx < value.len() {
            if ticker.expired() {
                return false;
            }
            match self.pattern.get_mut(px) {
                Some(PatternChar::Char { char, match_pos }) => {
                    if matches!(value.get(nx), Some(nc) if &nc.0 == char ) {
                        *match_pos = nx;
                        px += 1;
                        nx += 1;
                        continue;
                    }
                }
                Some(PatternChar::WildcardSingle { match_pos }) if nx < value.len() => {
                    *match_pos = nx;
                    px += 1;
                    nx += 1;
                    continue;
                }
                Some(PatternChar::WildcardMany { match_pos, .. }) => {
                    *match_pos = nx;
                    next_px = px;
                    next_nx = nx + 1;
                    px += 1;
                    continue;
                }
                _ => (),
            }
            if 0 < next_nx && next_nx <= value.len() {
                px = next_px;
                nx = next_nx;
                continue;
            }
            return false;
        }

        let mut last_pos = 0;

        captured_values.clear();
        if capture_positions & 1 != 0 {
            captured_values.push((0usize, value_.to_string()));
        }

        let mut wildcard_pos: usize = 1;
        for item in &mut self.pattern {
            if wildcard_pos <= MAX_MATCH_VARIABLES as usize {
                last_pos = match item {
                    PatternChar::WildcardMany { num, match_pos } => {
                        while *num > 1 {
                            if capture_positions & (1 << wildcard_pos) != 0 {
                                captured_values.push((wildcard_pos, String::with_capacity(0)));
                            }
                            wildcard_pos += 1;
                            *num -= 1;
                        }

                        if capture_positions & (1 << wildcard_pos) != 0 {
                            if let Some(range) = value.get(last_pos..*match_pos) {
                                captured_values.push((
                                    wildcard_pos,
                                    range
                                        .iter()
                                        .filter_map(|(_, char)| {
                                            if char != &REPLACEMENT_CHARACTER {
                                                Some(char)
                                            } else {
                                                None
                                            }
                                        })
                                        .collect::<String>(),
                                ));
                            } else {
                                debug_assert!(false, "Glob pattern failure.");
                                return false;
                            }
                        }
                        wildcard_pos += 1;
                        *match_pos
                    }
                    PatternChar::WildcardSingle { match_pos } => {
                        if capture_positions & (1 << wildcard_pos) != 0 {
                            if let Some((char, orig_char)) = value.get(*match_pos) {
                                captured_values.push((
                                    wildcard_pos,
                                    (if orig_char != &REPLACEMENT_CHARACTER {
                                        orig_char
                                    } else {
                                        char
                                    })
                                    .to_string(),
                                ));
                            } else {
                                debug_assert!(false, "Glob pattern failure.");
                                return false;
                            }
                        }
                        wildcard_pos += 1;
                        *match_pos
                    }
                    PatternChar::Char { match_pos, .. } => *match_pos,
                } + 1;
            } else {
                break;
            }
        }
        true
    }
}

/// sievegate patch (PATCHES.md #5): byte offset after `segment` (no `*`) matched at `pos`,
/// or `None`. Every pattern item consumes exactly one character.
fn match_at(segment: &[PatternChar], value: &str, pos: usize) -> Option<usize> {
    let rest = value.get(pos..)?;
    let mut chars = rest.char_indices();
    for item in segment {
        let (_, ch) = chars.next()?;
        if let PatternChar::Char { char, .. } = item {
            if *char != ch {
                return None;
            }
        }
    }
    Some(chars.next().map_or(value.len(), |(offset, _)| pos + offset))
}

/// sievegate patch (PATCHES.md #5): byte offset where the last `count` characters of `value`
/// start, or `None` when it is shorter.
fn start_of_last_chars(value: &str, count: usize) -> Option<usize> {
    if count == 0 {
        return Some(value.len());
    }
    value
        .char_indices()
        .rev()
        .nth(count - 1)
        .map(|(offset, _)| offset)
}

/// sievegate patch (PATCHES.md #5): end of the leftmost match of `segment` that starts at or
/// after `from` and ends at or before `limit`.
fn find(
    segment: &[PatternChar],
    value: &str,
    from: usize,
    limit: usize,
    ticker: &mut crate::runtime::deadline::Ticker,
) -> Option<usize> {
    let window = value.get(from..limit)?;
    if segment
        .iter()
        .all(|item| matches!(item, PatternChar::Char { .. }))
    {
        let literal: String = segment
            .iter()
            .filter_map(|item| match item {
                PatternChar::Char { char, .. } => Some(*char),
                _ => None,
            })
            .collect();
        return window
            .find(literal.as_str())
            .map(|offset| from + offset + literal.len());
    }
    for (offset, _) in window.char_indices() {
        if ticker.expired() {
            return None;
        }
        match match_at(segment, value, from + offset) {
            Some(end) if end <= limit => return Some(end),
            Some(_) => return None,
            None => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::runtime::tests::glob::GlobPattern;

    #[test]
    fn glob_match() {
        for (value, pattern, expected_result) in [
            (
                "frop.......frop.........frop....",
                "?*frop*",
                vec!["f", "rop.......", ".........frop...."],
            ),
            ("frop:frup:frop", "*:*:*", vec!["frop", "frup", "frop"]),
            (
                "a b c d e f g",
                "? ? ? ? ? ? ?",
                vec!["a", "b", "c", "d", "e", "f", "g"],
            ),
            ("puk pok puk pok", "pu*ok", vec!["k pok puk p"]),
            ("snot kip snot", "snot*snot", vec![" kip "]),
            (
                "klopfropstroptop",
                "*fr??*top",
                vec!["klop", "o", "p", "strop"],
            ),
            ("toptoptop", "*top", vec!["toptop"]),
            (
                "Fehlende Straße zur Karte hinzufügen",
                "FEHLENDE * ZUR Karte HINZUFÜGEN",
                vec!["Straße"],
            ),
        ] {
            let p = GlobPattern::compile(pattern, true);
            let mut match_values = Vec::new();
            assert!(
                p.clone().capture(value, u64::MAX ^ 1, &mut match_values),
                "{value:?} {pattern:?}",
            );

            assert_eq!(
                match_values.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
                expected_result,
                "{value:?} {pattern:?}",
            );
            assert!(p.matches(value), "{value:?} {pattern:?}",);
        }
    }
}
