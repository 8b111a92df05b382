# sievegate global virus policy: runs before every user's own script (sieve.before).
#
# virustest (RFC 5235) values set by sievegate from the ClamAV verdict:
#   0 = not scanned (clamd failed and scanner.on_failure = "deliver-unscanned")
#   1 = scanned, clean
#   4 = probably infected (signature name starts with a heuristic prefix:
#       "Heuristics." or "PUA." by default, see scanner.heuristic_prefixes)
#   5 = infected
#
# Infected mail is discarded whole and never bounced: bouncing it would send the virus
# back to a forged sender (backscatter). sievegate enforces this whatever scripts say:
# for virustest >= 4 it turns reject, ereject, redirect, vacation and notify into
# discard, and never stores the message.
require ["virustest", "relational", "comparator-i;ascii-numeric"];

if virustest :value "ge" :comparator "i;ascii-numeric" "4" {
    discard;
    stop;
}
