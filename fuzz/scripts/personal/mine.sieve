require ["fileinto", "reject"];
if header :contains "subject" "reject me" { reject "personal include says no"; }
