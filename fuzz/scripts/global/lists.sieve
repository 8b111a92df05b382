require ["fileinto", "imap4flags", "copy", "mailbox"];
addflag "\\Answered";
if exists "list-id" { fileinto :copy :create "Lists"; }
