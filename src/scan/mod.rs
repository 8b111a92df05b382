//! clamd client: one INSTREAM scan per message, our own reply parser, and the mapping of the
//! verdict to RFC 5235 `virustest` values.

/// What the scan concluded about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// clamd answered `stream: OK`.
    Clean,
    /// clamd answered `stream: <name> FOUND`. `heuristic` is true when the name starts with
    /// one of the configured heuristic prefixes (`Heuristics.`, `PUA.` by default).
    Infected { name: String, heuristic: bool },
    /// The message was not scanned (clamd failed and `on_failure = "deliver-unscanned"`).
    Unscanned,
}

impl Verdict {
    /// The RFC 5235 `virustest` value: 0 not scanned, 1 clean, 4 heuristic match, 5 virus.
    pub fn virustest(&self) -> u8 {
        match self {
            Verdict::Unscanned => 0,
            Verdict::Clean => 1,
            Verdict::Infected {
                heuristic: true, ..
            } => 4,
            Verdict::Infected {
                heuristic: false, ..
            } => 5,
        }
    }
}
