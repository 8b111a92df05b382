//! `check-config` as the user that runs `serve` (issue 20): run as root with `--as-user`
//! (or `--unit`), it reports each path that user cannot use, with the fix, and a config the
//! user can use is ok. And `serve` as a user outside `socket_group`: the error names the
//! group, the key and the fixes, and no socket file is left behind.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::binary::bin;

/// A throwaway system user (or group), removed on drop; names unique per test and run.
struct Account {
    name: String,
    group: bool,
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Account {
    fn user(prefix: &str) -> Account {
        let name = unique(prefix);
        run(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            &name,
        ]));
        Account { name, group: false }
    }

    fn group(prefix: &str) -> Account {
        let name = unique(prefix);
        run(Command::new("groupadd").args(["--system", &name]));
        Account { name, group: true }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let tool = if self.group { "groupdel" } else { "userdel" };
        let _ = Command::new(tool).arg(&self.name).output();
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("run");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chown(path: &Path, owner: &str) {
    run(Command::new("chown").arg(owner).arg(path));
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A directory every user can reach, with a config whose users file, state dir, socket dir
/// and mail root are root's (the user cannot use any of them).
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
}

impl Setup {
    fn new(server_extra: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        chmod(&root, 0o755);
        std::fs::write(
            root.join("users"),
            "alice@example.test::::::\nbob@example.test::::::\n",
        )
        .expect("users");
        chmod(&root.join("users"), 0o600);
        for (sub, mode) in [("state", 0o700), ("sock", 0o755), ("vmail", 0o755)] {
            std::fs::create_dir(root.join(sub)).expect("mkdir");
            chmod(&root.join(sub), mode);
        }
        let config = root.join("sievegate.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = [\"unix:{r}/sock/lmtp.sock\"]\nhostname = \"mx.example.test\"\nmax_message_size = 1000000\n{server_extra}\n\
                 [scanner]\nclamd = \"tcp:127.0.0.1:1\"\nmax_scan_size = 1000000\n\
                 [mailbox]\ndomains = [\"example.test\"]\nmaildir = \"{r}/vmail/%d/%n/Maildir\"\nusers_file = \"{r}/users\"\n\
                 [state]\ndir = \"{r}/state\"\n",
                r = root.display()
            ),
        )
        .expect("config");
        chmod(&config, 0o644);
        Setup {
            _dir: dir,
            root,
            config,
        }
    }

    fn check(&self, extra: &[&str]) -> Output {
        Command::new(bin())
            .args(["check-config", "-c"])
            .arg(&self.config)
            .args(extra)
            .output()
            .expect("run check-config")
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn as_user_each_problem_comes_with_its_fix_and_a_usable_config_is_ok() {
    let user = Account::user("sgck");
    let readers = Account::group("sgckr");
    let s = Setup::new("");
    let r = &s.root;
    // The users file is readable by its group (as Dovecot's root:dovecot 0640), which the
    // user is not in.
    chown(&r.join("users"), &format!("root:{}", readers.name));
    chmod(&r.join("users"), 0o640);
    std::fs::write(r.join("users"), "alice@example.test::::::\nbob\n").expect("users");

    let out = s.check(&["--as-user", &user.name]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let u = &user.name;
    assert!(
        stdout.contains(&format!("file checks ran as user {u} (uid ")),
        "{stdout}"
    );
    let g = &readers.name;
    let users = r.join("users");
    let state = r.join("state");
    let sock = r.join("sock");
    let vmail = r.join("vmail");
    for want in [
        format!(
            "mailbox.users_file: {f}: user {u} cannot read {f} (root:{g} 0640): give only this file to {u}: setfacl -m u:{u}:r {f} (package acl), or make its other reader the owner and {u} the group (chown OWNER:{u} {f}; a users file shared with Dovecot: chown dovecot:{u}); or add {u} to group {g}: adduser {u} {g}",
            f = users.display()
        ),
        format!("(that opens every file of group {g} to {u})"),
        format!(
            "state.dir: {d}: user {u} cannot create files in {d} (root:root 0700): chown {u} {d}",
            d = state.display()
        ),
        format!(
            "server.listen: {d}: user {u} cannot create files in {d} (root:root 0755): chown {u} {d}",
            d = sock.display()
        ),
        format!(
            "mailbox.maildir: 2 paths ({}/example.test/alice/Maildir, {}/example.test/bob/Maildir): user {u} cannot create files in {d} (root:root 0755)",
            vmail.display(),
            vmail.display(),
            d = vmail.display()
        ),
        // A bare name: fine for sievegate, not in a file shared with Dovecot.
        "warning: mailbox.users_file: 1 bare name (bob) without @domain".to_string(),
        "write user@domain entries (bob@example.test:...) in a file shared with Dovecot"
            .to_string(),
    ] {
        assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    }
    assert!(!stdout.contains("configuration ok"), "{stdout}");

    // Root itself can use everything: as root (no unit runs this file) it is ok, and says
    // whom it checked as.
    let out = s.check(&[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("file checks ran as user root (uid 0"),
        "{stdout}"
    );

    // Each fix as printed: the group, the owners. Then the user's check is ok.
    run(Command::new("adduser").args([u.as_str(), g.as_str()]));
    for dir in [&state, &sock, &vmail] {
        chown(dir, u);
    }
    let out = s.check(&["--as-user", u]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("configuration ok"), "{stdout}");
    assert!(!stderr.contains("cannot"), "{stderr}");

    // A state database root created (a `quarantine list` run as root, say) is refused too.
    let db = state.join("sievegate.db");
    std::fs::write(&db, "").expect("db");
    chmod(&db, 0o644);
    let out = s.check(&["--as-user", u]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "state.dir: {f}: user {u} cannot write {f} (root:root 0644)",
            f = db.display()
        )),
        "{stderr}"
    );
}

/// The STARTTLS certificate and key and the link key are read by the same code `serve`
/// reads them with: a pair rustls refuses, a key open to others or too short is a problem
/// (serve would not start); files the service user cannot read come with their fix.
#[test]
fn the_starttls_pair_and_the_link_key_are_read_as_serve_reads_them() {
    let user = Account::user("sgtls");
    let s = Setup::new("");
    let r = &s.root;
    let (cert, key, secret) = (r.join("cert.pem"), r.join("key.pem"), r.join("link.key"));
    std::fs::write(&cert, "not a certificate\n").expect("cert");
    std::fs::write(&key, "not a key\n").expect("key");
    std::fs::write(&secret, "short\n").expect("secret");
    chmod(&secret, 0o644);
    let mut config = std::fs::read_to_string(&s.config).expect("config");
    config.push_str(&format!(
        "[sieve]\npersonal_dir = \"{r}/sieve/%d/%n\"\npersonal = \"{r}/sieve/%d/%n.sieve\"\n\
         [managesieve]\nlisten = [\"127.0.0.1:4190\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
         [web]\nsecret_file = \"{}\"\n",
        cert.display(),
        key.display(),
        secret.display(),
        r = r.display()
    ));
    std::fs::write(&s.config, config).expect("config");

    let out = s.check(&[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    for want in [
        format!("managesieve.tls_cert/tls_key: {}: ", cert.display()),
        "sievegate would not start".to_string(),
        format!(
            "web.secret_file: {}: the link key is accessible by group or others (mode 0644); chmod 600 it",
            secret.display()
        ),
    ] {
        assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    }
    chmod(&secret, 0o600);
    let (_, stderr) = text(&s.check(&[]));
    assert!(
        stderr.contains("the link key has 6 bytes, at least"),
        "{stderr}"
    );

    // Real files: ok as root. As the service user they are root's 0600: each with its fix.
    let pki = crate::support::tls::make(&r.join("pki"));
    std::fs::copy(&pki.cert, &cert).expect("cert");
    std::fs::copy(&pki.key, &key).expect("key");
    chmod(&key, 0o600);
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").expect("secret");
    let out = s.check(&[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let out = s.check(&["--as-user", &user.name]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let u = &user.name;
    for (k, f) in [("managesieve.tls_key", &key), ("web.secret_file", &secret)] {
        let want = format!(
            "{k}: {f}: user {u} cannot read {f} (root:root 0600)",
            f = f.display()
        );
        assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("managesieve.tls_cert:"), "{stderr}");
}

#[test]
fn as_user_needs_an_existing_user_and_root_alone_never_fails_for_a_missing_one() {
    let s = Setup::new("");
    let out = s.check(&["--as-user", "no-such-user-sgck"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("no user \"no-such-user-sgck\" on this host"),
        "{stderr}"
    );
}

#[test]
fn the_units_dropins_give_the_socket_group() {
    let user = Account::user("sgcu");
    let socket_group = Account::group("sgcg");
    let s = Setup::new(&format!("socket_group = \"{}\"", socket_group.name));
    let r = &s.root;
    for dir in ["state", "sock", "vmail", "users"] {
        chown(&r.join(dir), &user.name);
    }
    // The packaged unit, run as the throwaway user with this config.
    let packaged =
        std::fs::read_to_string(crate::support::env::repo().join("contrib/sievegate.service"))
            .expect("unit");
    let unit_text = packaged
        .lines()
        .map(|l| match l.split_once('=') {
            Some(("User", _)) => format!("User={}", user.name),
            Some(("Group", _)) => format!("Group={}", user.name),
            Some(("ExecStart", _)) => format!(
                "ExecStart=/usr/sbin/sievegate serve -c {}",
                s.config.display()
            ),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let unit = r.join("sievegate-test.service");
    std::fs::write(&unit, unit_text).expect("unit");
    let unit_arg = unit.to_string_lossy().into_owned();

    let out = s.check(&["--unit", &unit_arg]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let (u, g) = (&user.name, &socket_group.name);
    // The test's files are in /tmp, which the packaged unit's PrivateTmp=yes hides.
    let want = format!(
        "server.listen: {}: the unit has PrivateTmp=yes: its /tmp and /var/tmp are its own",
        r.join("sock").display()
    );
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    let dropins = r.join("sievegate-test.service.d");
    std::fs::create_dir(&dropins).expect("mkdir");
    std::fs::write(dropins.join("paths.conf"), "[Service]\nPrivateTmp=no\n").expect("drop-in");
    let out = s.check(&["--unit", &unit_arg]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let want = format!(
        "state.dir: {d}: ProtectSystem=strict makes it read-only for the unit: ReadWritePaths={d} in a drop-in (systemctl edit sievegate-test, under [Service])",
        d = r.join("state").display()
    );
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    std::fs::write(
        dropins.join("paths.conf"),
        format!("[Service]\nPrivateTmp=no\nReadWritePaths={}\n", r.display()),
    )
    .expect("drop-in");
    let out = s.check(&["--unit", &unit_arg]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        !stderr.contains("ProtectSystem") && !stderr.contains("PrivateTmp"),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("file checks ran as user {u} (uid "))
            && stdout.contains(&format!(": the user of {}", unit.display())),
        "{stdout}"
    );
    let want = format!(
        "server.socket_group: {}: user {u} cannot give files group {g}, as it is not a member: add {u} to group {g}: a drop-in with SupplementaryGroups={g} (systemctl edit sievegate-test, under [Service]), or adduser {u} {g}; then restart sievegate",
        r.join("sock").display()
    );
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");

    // The packaged layout: the socket in the unit's RuntimeDirectory=, which systemd makes
    // at each start (it does not exist now): judged by the user's groups.
    let runtime = unique("sgcrun");
    let config = std::fs::read_to_string(&s.config).expect("config");
    let listen = format!("unix:{}/sock/lmtp.sock", r.display());
    assert!(config.contains(&listen));
    std::fs::write(
        &s.config,
        config.replace(&listen, &format!("unix:/run/{runtime}/lmtp.sock")),
    )
    .expect("config");
    let unit_text = std::fs::read_to_string(&unit).expect("unit");
    std::fs::write(
        &unit,
        unit_text.replace(
            "RuntimeDirectory=sievegate",
            &format!("RuntimeDirectory={runtime}"),
        ),
    )
    .expect("unit");
    let out = s.check(&["--unit", &unit_arg]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let want = format!(
        "server.socket_group: /run/{runtime}/lmtp.sock: user {u} cannot give files group {g}, as it is not a member: add {u} to group {g}: a drop-in with SupplementaryGroups={g}"
    );
    assert!(
        stderr.contains(&want),
        "want {want:?} in:
{stderr}"
    );
    assert!(
        !stderr.contains("server.listen"),
        "made by systemd: {stderr}"
    );
    assert!(!Path::new(&format!("/run/{runtime}")).exists());

    // The drop-in, as `systemctl edit` would write it.
    std::fs::write(
        dropins.join("override.conf"),
        format!("[Service]\nSupplementaryGroups={g}\n"),
    )
    .expect("drop-in");
    let out = s.check(&["--unit", &unit_arg]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("with its 2 drop-ins") && stdout.contains("configuration ok"),
        "{stdout}"
    );
}

/// `serve` as a user outside `socket_group`: the error names the group, the key and both
/// fixes; the socket it had created is gone.
#[test]
fn serve_outside_the_socket_group_says_what_to_do_and_leaves_no_socket() {
    let user = Account::user("sgcs");
    let socket_group = Account::group("sgcsg");
    let s = Setup::new(&format!(
        "socket_group = \"{}\"\nspool_threshold = 100000000",
        socket_group.name
    ));
    let r = &s.root;
    for dir in ["state", "sock", "vmail", "users"] {
        chown(&r.join(dir), &user.name);
    }
    let out = Command::new("runuser")
        .args(["-u", &user.name, "--", bin(), "serve", "-c"])
        .arg(&s.config)
        .output()
        .expect("run serve");
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    let (u, g) = (&user.name, &socket_group.name);
    for want in [
        format!(
            "server.socket_group: cannot listen on unix:{}/sock/lmtp.sock: cannot give the socket group {g} (server.socket_group = \"{g}\"): Operation not permitted",
            r.display()
        ),
        format!("user {u} is not a member of group {g}"),
        format!("adduser {u} {g}"),
        format!("SupplementaryGroups={g}"),
        "not starting".to_string(),
    ] {
        assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    }
    let left: Vec<_> = std::fs::read_dir(r.join("sock"))
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "no stale socket: {left:?}");
}

/// `serve`'s other startup errors as a user: each names the key and the fix, and a failed
/// start leaves no socket file behind.
#[test]
fn serve_startup_errors_name_the_key_and_the_fix() {
    let user = Account::user("sgce");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let s = Setup::new(&format!(
        "metrics_listen = \"127.0.0.1:{port}\"\nspool_threshold = 100000000"
    ));
    let r = &s.root;
    for dir in ["sock", "vmail", "users"] {
        chown(&r.join(dir), &user.name);
    }
    chmod(&r.join("state"), 0o755);
    let serve = || {
        let out = Command::new("runuser")
            .args(["-u", &user.name, "--", bin(), "serve", "-c"])
            .arg(&s.config)
            .output()
            .expect("run serve");
        assert!(!out.status.success());
        text(&out).1
    };
    let u = &user.name;
    let stderr = serve();
    let want = format!(
        "state.dir = \"{d}\": cannot open the state store {d}/sievegate.db: ",
        d = r.join("state").display()
    );
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    let want = format!(
        "user {u} cannot create files in {d} (root:root 0755): chown {u} {d}",
        d = r.join("state").display()
    );
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");

    chown(&r.join("state"), u);
    let stderr = serve();
    let want = format!(
        "server.metrics_listen: cannot listen on 127.0.0.1:{port}: Address already in use (os error 98): another process listens there (ss -ltnp 'sport = :{port}' shows which): stop it, or change server.metrics_listen"
    );
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    assert!(!r.join("sock/lmtp.sock").exists(), "no socket left behind");
    drop(taken);
}
