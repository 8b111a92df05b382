//! A real browser for the web pages' tests: Debian's `chromium`, headless, driven through
//! `chromedriver` (WebDriver) with fantoccini. Each [`Browser`] has its own chromedriver
//! on a free port and a fresh profile directory; dropping it ends both.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use super::smtp_sink::free_port;

/// chromedriver and a WebDriver session with a headless chromium.
pub struct Browser {
    driver: Child,
    _profile: tempfile::TempDir,
    /// The session.
    pub client: Client,
}

impl Browser {
    /// Starts chromedriver and a session (window 1000×900, so screenshots are stable).
    pub async fn start() -> Browser {
        let port = free_port();
        let mut driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/bin/chromedriver (package chromium-driver)");
        let profile = tempfile::tempdir().expect("profile dir");
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1000,900".into(),
            "--hide-scrollbars".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    let _ = driver.kill();
                    panic!("no WebDriver session from chromedriver: {e}");
                }
            }
        };
        Browser {
            driver,
            _profile: profile,
            client,
        }
    }

    /// Clicks the element `css` (a submit button or a link) and waits until the new page
    /// has loaded: the click may return before the navigation starts, and an element of
    /// the old page found meanwhile would be stale.
    pub async fn click_to_navigate(&self, css: &str) {
        let c = &self.client;
        c.execute("window.__sievegate_old_page = true; return null;", vec![])
            .await
            .expect("mark the page");
        c.find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Between two pages a script may find no document: not done yet.
            let done = c
                .execute(
                    "return window.__sievegate_old_page === undefined && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .ok();
            if done == Some(serde_json::Value::Bool(true)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no new page after clicking {css}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replaces the text of the input `css` by `text`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        el.clear().await.expect("clear");
        el.send_keys(text).await.expect("type");
    }

    /// The visible text of the element `css`.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .expect("text")
    }

    /// The current address.
    pub async fn url(&self) -> String {
        self.client.current_url().await.expect("url").to_string()
    }

    /// The last navigation's time from its start to the end of the load event, in
    /// milliseconds, as the browser measured it (Navigation Timing).
    pub async fn load_ms(&self) -> f64 {
        self.client
            .execute(
                "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;",
                vec![],
            )
            .await
            .expect("navigation timing")
            .as_f64()
            .expect("a number")
    }

    /// Ends the session (chromium exits) and chromedriver.
    pub async fn quit(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Runs a browser test's `future` on a runtime of its own (the tests are plain `#[test]`s
/// beside servers and CLIs that block).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}
