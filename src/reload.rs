//! Hot reload: on SIGHUP, or when the policy file changes, the file is read and checked in full;
//! a valid one replaces the policy between two decisions, an invalid one changes nothing.
//!
//! What moves with a reload: the rules (rate-limit windows stay with the rules of the same
//! identity; calls waiting for a person keep the rule they were held under and are judged again
//! under the new rules when approved), `[policy]`, `[classes]`, `[approval]` and the pinning
//! mode. What does not: `[server]`, `[limits]` and the pin file, which the running session was
//! built from; a change to them is reported as needing a restart.

use std::path::PathBuf;
use std::time::SystemTime;

use tracing::{error, info, warn};

use crate::config::Config;
use crate::policy::Policy;

/// What a valid reload brings.
pub struct Update {
    pub policy: Policy,
    pub config: Config,
}

pub struct Reloader {
    path: PathBuf,
    running: Config,
    /// The file's modification time and length when last read.
    seen: Option<(SystemTime, u64)>,
}

impl Reloader {
    pub fn new(path: PathBuf, running: Config) -> Reloader {
        let seen = stamp(&path);
        Reloader {
            path,
            running,
            seen,
        }
    }

    /// When the policy says it may be read again: the running policy's `[policy] reload` (a
    /// reload to a stricter mode takes effect at once; nothing reloads out of `never`).
    pub fn mode(&self) -> crate::config::ReloadMode {
        self.running.policy.reload
    }

    /// Whether the file looks different from when it was last read.
    pub fn changed(&self) -> bool {
        let now = stamp(&self.path);
        if now.is_none() || now == self.seen {
            return false;
        }
        true
    }

    /// Reads and checks the file. `None` (with every problem logged) leaves everything as it is.
    pub fn reload(&mut self, why: &str) -> Option<Update> {
        self.seen = stamp(&self.path);
        let config = match Config::load(&self.path) {
            Ok(config) => config,
            Err(err) => {
                error!("{why}: the new policy is not valid, so the old one stays in force: {err}");
                return None;
            }
        };
        let policy = match Policy::new(&config) {
            Ok(policy) => policy,
            Err(err) => {
                error!("{why}: the new policy cannot be compiled, so the old one stays: {err:#}");
                return None;
            }
        };
        for (section, same) in [
            ("[server]", config.server == self.running.server),
            ("[limits]", config.limits == self.running.limits),
            (
                "[pinning] file",
                config.pinning.file == self.running.pinning.file,
            ),
            ("[store]", config.store == self.running.store),
            ("[audit]", config.audit == self.running.audit),
        ] {
            if !same {
                warn!(
                    "{why}: {section} changed; that takes effect only when the proxy is restarted"
                );
            }
        }
        info!(
            rules = config.rules.len(),
            "{why}: reloaded the policy from {}",
            self.path.display()
        );
        // What needs a restart stays as it runs, so a later reload still says so.
        let running = std::mem::take(&mut self.running);
        self.running = Config {
            server: running.server,
            limits: running.limits,
            store: running.store,
            audit: running.audit,
            pinning: crate::config::Pinning {
                file: running.pinning.file,
                ..config.pinning.clone()
            },
            ..config.clone()
        };
        Some(Update { policy, config })
    }
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}
