//! The quarantine page in a real browser (headless chromium through WebDriver): open a
//! link, see the entry, click release, and the mail is in the Maildir; a tampered link
//! shows an error page and changes nothing. With `SIEVEGATE_SCREENSHOT=1` the test writes
//! the entry page's screenshot for the book (docs/src/images/quarantine-entry.png).

use fantoccini::Locator;
use sievegate::quarantine::link::Action;

use crate::quarantine::send;
use crate::support::browser::Browser;
use crate::support::clamd::Clamd;
use crate::support::env::repo;
use crate::support::messages::clean_message;
use crate::web::site;

#[test]
fn a_browser_opens_a_link_and_releases_the_mail() {
    let clamd = Clamd::shared();
    let site = site(clamd);
    let out = send(
        &site.server,
        "billing@supplier.example",
        &["alice@example.test"],
        &clean_message("please hold: invoice 2026-118"),
    );
    assert!(out.contains("250 2.0.0 <alice@example.test>"), "{out}");
    let id = site.newest();
    // The policy that held it lets the release through.
    site.stop_holding();
    let view = site.token(&id, "alice@example.test", Action::View);
    let base = format!("http://127.0.0.1:{}", site.port);
    crate::support::browser::block_on(async {
        let browser = Browser::start().await;
        let c = &browser.client;

        // A tampered link: an error page, nothing changes.
        let mut tampered: Vec<char> = view.chars().collect();
        let at = tampered.len() / 2;
        tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
        let tampered: String = tampered.into_iter().collect();
        c.goto(&format!("{base}/q/{tampered}")).await.expect("goto");
        let page = c.source().await.expect("source");
        assert!(page.contains("This link is not valid"), "{page}");
        assert!(
            c.find(Locator::Css("form")).await.is_err(),
            "no form on the error page"
        );
        assert!(site.env.messages("alice", "").is_empty());

        // The entry page.
        c.goto(&format!("{base}/q/{view}")).await.expect("goto");
        let h1 = c.find(Locator::Css("h1")).await.expect("h1");
        assert_eq!(h1.text().await.expect("text"), "Held message");
        let page = c.source().await.expect("source");
        assert!(page.contains("please hold: invoice 2026-118"), "{page}");
        assert!(
            !page.contains("this is a clean test message"),
            "never the body"
        );
        if std::env::var_os("SIEVEGATE_SCREENSHOT").is_some() {
            let png = c.screenshot().await.expect("screenshot");
            let path = repo().join("docs/src/images/quarantine-entry.png");
            std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            std::fs::write(&path, png).expect("write the screenshot");
        }
        assert!(
            site.env.messages("alice", "").is_empty(),
            "opening changes nothing"
        );

        // Release: the page says so and the mail is in the Maildir, once.
        browser.click_to_navigate("button[value='release']").await;
        assert_eq!(browser.text("h1").await, "Released");
        let page = c.source().await.expect("source");
        assert!(
            page.contains("released to you"),
            "{page}\n{}",
            site.server.logs()
        );
        let stored = site.env.messages("alice", "");
        assert_eq!(stored.len(), 1);
        assert!(String::from_utf8_lossy(&stored[0].1).contains("invoice 2026-118"));

        // Back on the entry page: released, no buttons.
        c.goto(&format!("{base}/q/{view}")).await.expect("goto");
        let page = c.source().await.expect("source");
        assert!(page.contains("was released to you on"), "{page}");
        assert!(c.find(Locator::Css("form")).await.is_err());
        browser.quit().await;
    });
}
