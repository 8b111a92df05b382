# Shared by scripts/*: install missing Debian packages (root or sudo), find clamd.
# shellcheck shell=bash

# ensure_packages PKG...: installs the packages that are not installed yet.
ensure_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing Debian packages: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # Debian's clamav-daemon and postfix try to start their system services; in a
    # container without systemd that fails harmlessly, and we start private instances.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_toolchain: rust-toolchain.toml pins a version. Where rustup knows that version only
# as "stable" (this kind of machine: one toolchain, nothing to download), name it as pinned
# by a link, so rustup does not try a download that cannot work; else ask rustup for it.
ensure_toolchain() {
    command -v rustup >/dev/null || return 0
    local top want home triple have
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    want=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$top/rust-toolchain.toml")
    [ -n "$want" ] || return 0
    home=${RUSTUP_HOME:-$HOME/.rustup}
    triple=$(rustup run stable rustc -vV 2>/dev/null | sed -n 's/^host: //p')
    [ -n "$triple" ] && [ -e "$home/toolchains/$want-$triple" ] && return 0
    have=$(rustup run stable rustc --version 2>/dev/null | awk '{print $2}')
    if [ -n "$triple" ] && [ "$have" = "$want" ]; then
        echo "rust-toolchain.toml pins $want, which is the installed stable: linking it by that name" >&2
        ln -s "stable-$triple" "$home/toolchains/$want-$triple"
    else
        rustup toolchain install "$want" --profile minimal --component rustfmt,clippy
    fi
}

# ensure_exim: Debian's exim4-daemon-light, unpacked (not installed: it conflicts with
# postfix, both being the system MTA) under $EXIM_ROOT (default
# /var/cache/sievegate-test/exim), for the tests that read the Received lines real Exim
# writes (tests/it/received.rs runs $EXIM_ROOT/usr/sbin/exim4 with a private -C config).
# Its shared libraries are installed as ordinary packages; the Debian-exim user that the
# binary was built for is created when missing. Needs root (or sudo).
ensure_exim() {
    local root=${EXIM_ROOT:-/var/cache/sievegate-test/exim}
    [ -x "$root/usr/sbin/exim4" ] && return 0
    ensure_packages libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0 libnsl2 libpcre2-8-0 libcrypt1
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    id Debian-exim >/dev/null 2>&1 ||
        $sudo useradd --system --no-create-home --shell /usr/sbin/nologin Debian-exim
    local tmp
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    (cd "$tmp" && $sudo env DEBIAN_FRONTEND=noninteractive apt-get download exim4-daemon-light exim4-base >/dev/null) || {
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        (cd "$tmp" && $sudo apt-get download exim4-daemon-light exim4-base >/dev/null)
    }
    $sudo mkdir -p "$root"
    for deb in "$tmp"/*.deb; do
        $sudo dpkg-deb -x "$deb" "$root"
    done
    $sudo rm -rf "$tmp"
    echo "exim unpacked in $root" >&2
}

# ensure_sendmail: Debian's sendmail-bin 8.17 with sendmail-base and sendmail-cf (the m4
# macros the test builds its .cf from), unpacked (not installed: sendmail-bin conflicts with
# postfix, both being the system MTA) under $SENDMAIL_ROOT (default
# /var/cache/sievegate-test/sendmail), for the test that reads the Received lines real
# Sendmail writes (tests/it/received.rs runs $SENDMAIL_ROOT/usr/libexec/sendmail/sendmail
# inetd-style, -bs on an accepted loopback socket, in a private UTS and mount namespace).
# Its shared libraries and m4 are installed as ordinary packages. No user is needed: the
# test runs it as root and only queues (the qf file holds the headers). Needs root (or sudo).
ensure_sendmail() {
    local root=${SENDMAIL_ROOT:-/var/cache/sievegate-test/sendmail}
    [ -x "$root/usr/libexec/sendmail/sendmail" ] && [ -f "$root/usr/share/sendmail/cf/m4/cf.m4" ] && return 0
    ensure_packages m4 util-linux libdb5.3 libldap-2.5-0 liblockfile1 libnsl2 libsasl2-2 libssl3 libwrap0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    local tmp
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    (cd "$tmp" && $sudo env DEBIAN_FRONTEND=noninteractive apt-get download sendmail-bin sendmail-base sendmail-cf >/dev/null) || {
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        (cd "$tmp" && $sudo apt-get download sendmail-bin sendmail-base sendmail-cf >/dev/null)
    }
    $sudo mkdir -p "$root"
    for deb in "$tmp"/*.deb; do
        $sudo dpkg-deb -x "$deb" "$root"
    done
    $sudo rm -rf "$tmp"
    echo "sendmail unpacked in $root" >&2
}

# ensure_mdbook: the pinned mdbook that builds the book in docs/, as $MDBOOK
# (target/tools/bin/mdbook), installed from crates.io with cargo the first time: no Debian
# package has it. `mdbook build` needs no feature; of the default ones only the search index
# is kept (about 5 s more CPU than none), not serve and watch (a web server and a file
# watcher): the install is about 130 s of CPU, once per target/ directory.
MDBOOK_VERSION=0.5.4
MDBOOK_FEATURES=search
ensure_mdbook() {
    local tools
    tools=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/tools
    MDBOOK=$tools/bin/mdbook
    if [ "$("$MDBOOK" --version 2>/dev/null || true)" = "mdbook v$MDBOOK_VERSION" ] &&
        [ "$(cat "$tools/mdbook.features" 2>/dev/null || true)" = "$MDBOOK_FEATURES" ]; then
        return 0
    fi
    echo "installing mdbook $MDBOOK_VERSION ($MDBOOK_FEATURES) into $tools" >&2
    cargo install --quiet --locked --force --no-default-features --features "$MDBOOK_FEATURES" \
        --version "$MDBOOK_VERSION" --root "$tools" mdbook
    echo "$MDBOOK_FEATURES" >"$tools/mdbook.features"
}
