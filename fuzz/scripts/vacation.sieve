require ["vacation", "variables"];
set "subject" "away";
if header :matches "subject" "*" { set "subject" "Re: ${1}"; }
vacation :days 1 :subject "${subject}" :addresses ["alice@example.test"] "I am away.";
