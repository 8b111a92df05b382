//! Logins for the servers that need them (ManageSieve, the web admin view): a user name and a
//! password checked against `[mailbox] users_file` ([`password`]) or Dovecot's auth service.

pub mod password;
