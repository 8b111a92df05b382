require ["fileinto", "mailbox", "imap4flags", "variables", "body", "envelope", "editheader",
         "duplicate", "mime", "foreverypart", "extracttext", "date", "relational",
         "comparator-i;ascii-numeric", "regex", "subaddress", "copy", "vacation", "enotify",
         "virustest", "spamtest", "environment", "mailboxid", "special-use", "index"];
if envelope :detail "to" "news" { fileinto :create "News"; }
if header :regex "subject" "^(re|fwd?): *(.*)$" { set "topic" "${2}"; }
if body :text :contains "unsubscribe" { addflag "$List"; }
if address :domain :is "from" "remote.example" { addflag "\\Flagged"; }
if date :value "ge" :originalzone "date" "year" "2020" { addflag "recent"; }
if header :index 2 :contains "received" "example" { addflag "hops"; }
foreverypart {
    if header :mime :type "content-type" "text" {
        extracttext :first 200 "text";
        if string :contains "${text}" "invoice" { fileinto :copy "Invoices"; }
    }
    if header :mime :param "filename" :matches "content-disposition" "*.exe" {
        addheader "X-Has-Exe" "yes";
    }
}
if duplicate :seconds 60 { discard; stop; }
if virustest :value "ge" :comparator "i;ascii-numeric" "4" {
    vacation :days 1 "got your virus";
    notify "mailto:admin@remote.example";
    redirect "admin@remote.example";
}
deleteheader :matches "x-spam-flag" "*";
addheader :last "X-Topic" "${topic}";
fileinto :flags "\\Seen" :create "Topics/${topic}";
keep;
