//! `sievegate serve`: the wiring around [`Server`]: the log writer, listeners, the metrics
//! responder, the SIGHUP reload loop, the clamd probe, the background tasks (tmp/ sweep,
//! quarantine purge and digests, outbox, notifier), systemd readiness and the bounded shutdown.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use sievegate::config::Config;
use sievegate::delivery::Services;
use sievegate::server::Server;

use super::{load, recipients_note, Say};

pub mod errors;

pub fn serve(path: PathBuf) -> ExitCode {
    // The log writer follows [log], so the file is read for it first; when it cannot be
    // read, `load` below logs why and the default writer is as good as any. From here on
    // everything goes through the log writer, so a JSON log stays one object per line.
    let log_config = Config::load(&path).map(|c| c.log).unwrap_or_default();
    let mut log = sievegate::logging::init(&log_config);
    // Process-wide, once, before the runtime's threads allocate (after the log writer, so a
    // failure is logged): see `delivery::budget`.
    sievegate::delivery::budget::tune_allocator();
    let Some(services) = load(&path, true, Say::Log) else {
        tracing::error!("not starting: fix the configuration above");
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Signal handlers first: a SIGTERM during startup must still mean a clean exit, and
        // a SIGHUP must not kill the process (its default action).
        let (shutdown, mut hangup) = match (
            shutdown_signal(),
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()),
        ) {
            (Ok(shutdown), Ok(hangup)) => (shutdown, hangup),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let services = Arc::new(services);
        let who = super::check_config::myself();
        // Metrics first: a port in use there must not leave the LMTP socket files behind.
        let metrics = match services.config.server.metrics_listen {
            Some(addr) => match sievegate::metrics::bind(addr).await {
                Ok(listener) => Some(listener),
                Err(e) => {
                    tracing::error!("{}", errors::tcp("server.metrics_listen", &addr, &e));
                    tracing::error!("not starting: fix the problem above");
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        // The quarantine's web page ([web]): its key and listeners, before the LMTP
        // sockets, so a bad key or a port in use stops the start with nothing left behind.
        let web = match sievegate::web::Web::bind(&services.config.web).await {
            Ok(web) => web,
            Err(e) => {
                tracing::error!("{e}");
                tracing::error!("not starting: fix the problem above");
                return ExitCode::FAILURE;
            }
        };
        let server = match Server::bind(Arc::clone(&services)).await {
            Ok(server) => server,
            Err(e) => {
                tracing::error!("{}", errors::server(&e, &who));
                tracing::error!("not starting: fix the problem above");
                return ExitCode::FAILURE;
            }
        };
        // ManageSieve (off unless [managesieve] listen), announced before the LMTP listeners.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let managesieve = match sievegate::managesieve::start(
            server.current().subscribe(),
            stop_rx.clone(),
        )
        .await
        {
            Ok(running) => running,
            Err(e) => {
                tracing::error!("{e}");
                tracing::error!("not starting: fix the problem above");
                for addr in server.local_addrs() {
                    if let sievegate::config::ListenAddr::Unix(path) = addr {
                        let _ = std::fs::remove_file(path);
                    }
                }
                return ExitCode::FAILURE;
            }
        };
        for addr in managesieve.iter().flat_map(|m| &m.addrs) {
            tracing::info!(%addr, "managesieve at {addr}");
        }
        for problem in errors::later(&services.config, &who) {
            tracing::error!("{problem}");
        }
        for addr in server.local_addrs() {
            tracing::info!(%addr, "listening on {addr}");
        }
        sievegate::systemd::ready();
        tracing::info!("{}", recipients_note(&services));
        let current = server.current();
        start_tmp_sweep(&services);
        start_quarantine_purge(current.clone());
        start_quarantine_digest(current.clone());
        start_state_expiry(current.clone());
        start_state_probe(current.clone());
        // The clamd probe (health gating at MAIL); its own task, so a hung clamd cannot
        // hold startup for the whole scan timeout.
        let mut probe = tokio::spawn(sievegate::scan::health::watch(
            services.scanner.clone(),
            services.config.scanner.health_interval,
        ));
        // One shutdown signal for the server and the background senders: the notifier
        // queues a pending digest when it stops, the outbox finishes its pass.
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let web_task = web.map(|web| {
            for addr in web.local_addrs() {
                tracing::info!(%addr, "quarantine web page at {addr}");
            }
            tokio::spawn(web.run(current.clone(), stopped(stop_rx.clone())))
        });
        if let Some(listener) = metrics {
            // Not "listening on": that phrase names the LMTP listeners in the log.
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "metrics at http://{addr}/metrics");
            }
            tokio::spawn(sievegate::metrics::serve(
                listener,
                stopped(stop_rx.clone()),
            ));
        }
        // SIGHUP: one log line per reload (reloaded, or refused with every problem). The
        // outbox and the notifier started below belong to the process, not to a config:
        // reloads reuse them.
        let reload_path = path.clone();
        let reload_current = current.clone();
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                sievegate::systemd::reloading();
                let old = reload_current.get();
                if let Some(new) = sievegate::reload::apply(&reload_path, &reload_current).await {
                    log.set_level(&new.config.log.level);
                    // New clamd settings: a new scanner, whose health only a new probe keeps.
                    if !sievegate::reload::same_probe(&old, &new) {
                        probe.abort();
                        probe = tokio::spawn(sievegate::scan::health::watch(
                            new.scanner.clone(),
                            new.config.scanner.health_interval,
                        ));
                    }
                }
                drop(old);
                sievegate::systemd::ready();
            }
        });
        let outbox = services.outbox.clone();
        let outbox_task = tokio::spawn(outbox.run(stopped(stop_rx.clone())));
        let notifier_task = services.notifier.clone().map(|notifier| {
            let stop = stopped(stop_rx.clone());
            tokio::spawn(async move { notifier.run(stop).await })
        });
        // The startup services stay referenced only through `current` from here on, so a
        // reload lets them go once their sessions are done.
        drop(services);
        server
            .run(async move {
                shutdown.await;
                sievegate::systemd::stopping();
                let _ = stop_tx.send(true);
            })
            .await;
        if let Some(managesieve) = managesieve {
            let _ = managesieve.task.await;
        }
        if let Some(task) = web_task {
            let _ = task.await;
        }
        if let Some(task) = notifier_task {
            let _ = task.await;
        }
        // Bounded: a relay that hangs must not keep the process alive; what is not sent
        // stays queued in the state store for the next start.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), outbox_task).await;
        ExitCode::SUCCESS
    })
}

/// Installs the SIGTERM and SIGINT handlers now; the returned future resolves on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// Removes crash leftovers from every Maildir's `tmp/` in a background thread: the walk may
/// be long and must not delay serving (deliveries clean their own folder anyway).
fn start_tmp_sweep(services: &Services) {
    let mailbox = services.config.mailbox.clone();
    let table = services.users.table();
    let spawned = std::thread::Builder::new()
        .name("tmp-sweep".into())
        .spawn(move || {
            let entries: Option<Vec<(&str, Option<&std::path::Path>)>> = table
                .as_deref()
                .map(|t| t.iter().map(|(n, u)| (n, u.home.as_deref())).collect());
            let sweep = sievegate::store::cleanup::startup_sweep(
                &mailbox.maildir,
                &mailbox.domains,
                entries.as_deref(),
            );
            tracing::info!(
                maildirs = sweep.maildirs,
                removed = sweep.removed,
                truncated = sweep.truncated,
                "tmp/ sweep done: {} leftover files removed from {} Maildirs",
                sweep.removed,
                sweep.maildirs
            );
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the tmp/ sweep; deliveries still clean their folders");
    }
}

/// Purges quarantine entries older than `[quarantine] retention_days` now and every hour,
/// and sweeps what no index entry owns (files left by a crash) and index entries whose file
/// is gone, in a thread: deleting thousands of files must not hold up deliveries. Each pass
/// uses the current services, so a reload that enables the quarantine or changes the
/// retention applies from the next pass. An entry that cannot be removed is logged and
/// tried again next hour; the others are purged. Hosts sharing a state store take turns:
/// each hour's pass runs on the first host to claim it
/// ([`sievegate::quarantine::Quarantine::take_purge_turn`]).
fn start_quarantine_purge(current: sievegate::reload::Current) {
    let spawned = std::thread::Builder::new()
        .name("quarantine-purge".into())
        .spawn(move || loop {
            let services = current.get();
            let now = std::time::SystemTime::now();
            // One host's pass per hour, whichever gets there first (the others skip it).
            let turn = services.quarantine.as_ref().filter(|q| match q.take_purge_turn(now) {
                Ok(taken) => taken,
                Err(e) => {
                    tracing::error!(error = %e, "quarantine purge: cannot take its turn in the state store; retrying in an hour");
                    false
                }
            });
            if let Some(q) = turn {
                let before = now
                    .checked_sub(services.config.quarantine.retention)
                    .unwrap_or(std::time::UNIX_EPOCH);
                match q.purge(before, |_, _| {}) {
                    Ok(p) if p.removed == 0 && p.failed.is_empty() => {}
                    Ok(p) => {
                        let (n, failed) = (p.removed, p.failed.len());
                        tracing::info!(
                            purged = n,
                            failed,
                            "quarantine: {n} entries past retention purged"
                        )
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "quarantine purge failed; retrying in an hour")
                    }
                }
                if let Err(e) = q.sweep(now, sievegate::quarantine::SWEEP_GRACE) {
                    tracing::error!(error = %e, "quarantine sweep failed; retrying in an hour");
                }
            }
            drop(services);
            std::thread::sleep(std::time::Duration::from_secs(3600));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the quarantine purge");
    }
}

/// Sends the quarantine digests on `[quarantine.digest] schedule`: a pass a minute, in a
/// thread (the state store and the users file block), each with the current services (a
/// reload that enables digests or changes the schedule applies from the next pass). The
/// slot claim in the state store makes a pass after the slot's first one a no-op, on this
/// host and on every other host sharing the store.
fn start_quarantine_digest(current: sievegate::reload::Current) {
    use sievegate::quarantine::digest;
    let spawned = std::thread::Builder::new()
        .name("quarantine-digest".into())
        .spawn(move || loop {
            let services = current.get();
            if services.config.quarantine.digest.enabled {
                let run = || -> Result<digest::Report, digest::DigestError> {
                    let links = digest::links(&services.config)?;
                    digest::Digester {
                        config: &services.config,
                        state: services.state.as_ref(),
                        users: &services.users,
                        outbox: &services.outbox,
                        links: links.as_ref(),
                    }
                    .run(digest::Run {
                        now: std::time::SystemTime::now(),
                        force: false,
                    })
                };
                match run() {
                    Ok(report) if report.already_done => {}
                    Ok(report) => tracing::info!(
                        sent = report.sent.len(),
                        external = report.external,
                        unknown = report.unknown,
                        opted_out = report.opted_out,
                        rate_limited = report.rate_limited,
                        failed = report.failed,
                        "quarantine digests: {} queued",
                        report.sent.len()
                    ),
                    Err(e) => tracing::error!(error = %e, "quarantine digests not sent; retrying in a minute"),
                }
            }
            drop(services);
            std::thread::sleep(std::time::Duration::from_secs(60));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the quarantine digests");
    }
}

/// Deletes expired cache and rate rows every `[state] expire_interval_secs` (5 min) and
/// refreshes the size gauges, in a thread (SQLite deletes fsync). Each pass uses the
/// current services: a reload's new intervals apply from the next pass.
fn start_state_expiry(current: sievegate::reload::Current) {
    let spawned = std::thread::Builder::new()
        .name("state-expiry".into())
        .spawn(move || loop {
            let services = current.get();
            let interval = services.config.state.expire_interval;
            expire_state(
                services.state.as_ref(),
                std::time::SystemTime::now(),
                services.config.rate_keep(),
            );
            drop(services);
            std::thread::sleep(interval);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the state expiry");
    }
}

/// Probes the state store's server (PostgreSQL) every `[scanner] health_interval_secs`, in
/// a thread (the store's calls block), so the MAIL gate lifts within one interval of the
/// server answering again, without a delivery or a restart. A store without a server
/// (SQLite, memory) has no health and no probe; with the interval 0 the flag is not
/// watched and MAIL is never refused on it (like clamd's). The store survives reloads, so
/// one thread serves the process; each pass reads the current interval.
fn start_state_probe(current: sievegate::reload::Current) {
    if current.get().state.health().is_none() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("state-probe".into())
        .spawn(move || {
            let mut first = true;
            loop {
                let services = current.get();
                let interval = services.config.scanner.health_interval;
                let state = std::sync::Arc::clone(&services.state);
                drop(services);
                let Some(health) = state.health() else {
                    return;
                };
                health.set_watched(interval.is_some());
                let result = state.probe();
                // The first answer is logged either way: it is what an admin looks for
                // after a start (later ones only on a change, by the flag).
                if first {
                    first = false;
                    match &result {
                        Ok(()) => tracing::info!("state store answers"),
                        Err(e) => tracing::warn!(error = %e, "state store does not answer yet: new transactions get 451 4.3.0 at MAIL until it does"),
                    }
                }
                drop(state);
                std::thread::sleep(interval.unwrap_or(std::time::Duration::from_secs(10)));
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the state store probe");
    }
}

/// One expiry pass: expired rows out, gauges set; failures are logged (the next pass
/// tries again).
fn expire_state(
    state: &dyn sievegate::state::StateStore,
    now: std::time::SystemTime,
    rate_keep: std::time::Duration,
) {
    match state.expire(now, rate_keep) {
        Ok(expired) => {
            sievegate::metrics::state_expired(expired.cache, expired.rate);
            if expired.cache + expired.rate > 0 {
                tracing::debug!(
                    cache = expired.cache,
                    rate = expired.rate,
                    "state: expired rows deleted"
                );
            }
        }
        Err(e) => tracing::error!(error = %e, "state expiry failed; retrying at the next pass"),
    }
    match state.sizes() {
        Ok(s) => sievegate::metrics::state_sizes(s.cache, s.rate, s.queue, s.quarantine),
        Err(e) => tracing::warn!(error = %e, "cannot count state rows for the metrics"),
    }
}
