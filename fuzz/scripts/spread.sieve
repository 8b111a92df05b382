require ["fileinto", "mailbox", "imap4flags", "editheader", "copy"];
addheader "X-Filed" "yes";
fileinto :create "A";
fileinto :create :flags ["\\Seen", "\\Answered", "work", "$Label1"] "A";
fileinto :copy :create "B.C";
fileinto "../../escape";
fileinto "INBOX";
deleteheader "subject";
keep;
