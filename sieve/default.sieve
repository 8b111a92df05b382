# sievegate default script: runs for users without a personal script (sieve.default).
# Delivers to INBOX. Edit to taste, e.g. file list mail into folders:
#
#   require ["fileinto", "mailbox"];
#   if exists "List-Id" { fileinto :create "Lists"; stop; }
keep;
