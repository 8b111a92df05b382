require ["reject", "ereject"];
if header :contains "subject" "e" {
    ereject "refused in protocol";
}
reject "not wanted here";
