# A global script that asks for everything the virus policy must remove from infected mail,
# without stop, so the personal script runs after it.
require ["reject", "vacation", "enotify", "fileinto", "copy", "vnd.sievegate.quarantine"];
redirect :copy "third@remote.example";
vacation :days 1 "hello";
notify "mailto:watch@remote.example";
fileinto :copy "Before";
if header :contains "subject" "q" { quarantine; }
if header :contains "subject" "r" { reject "before says no"; }
