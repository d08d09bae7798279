//! The `requestState` of a 2026-07-28 approval: sealed by the proxy, opened on the retry.
//!
//! In 2026-07-28 the proxy holds nothing while a person decides: it answers the `tools/call`
//! with an `InputRequiredResult`, and the client retries with the person's answer and the state
//! echoed. The state travels through the client and the agent, so it is attacker-controlled
//! input. It carries a nonce and an expiry in the clear and an HMAC-SHA256, under a key made
//! fresh for each proxy process, over those and over the tool and the digest of the arguments
//! that were shown. Neither the tool nor the arguments are in the state: the retry's own are
//! checked against the seal, so a state moved to another call, edited, expired or used twice
//! approves nothing. Nothing in it is a secret that would let its holder approve anything.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::digest::hex;

/// What every state the proxy seals starts with, so that a state of the server's own (a
/// server may use input requests itself) is told apart and passed on untouched.
pub const STATE_PREFIX: &str = "mcp-policy-proxy.v1.";

/// Why a state approves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// Not of the proxy's form, or its seal does not match this call (edited, forged, or
    /// moved to other arguments or another tool).
    Forged,
    Expired,
    /// Its nonce was already used.
    Replayed,
}

impl Broken {
    pub fn describe(self) -> &'static str {
        match self {
            Broken::Forged => {
                "the approval state does not match this call (it was altered, or it belongs to \
                 another tool or other arguments)"
            }
            Broken::Expired => "the approval state has expired",
            Broken::Replayed => "the approval state was already used",
        }
    }
}

pub struct Sealer {
    key: [u8; 32],
    /// Times are milliseconds since this instant, so a state needs no wall clock.
    epoch: Instant,
    next_nonce: u64,
    /// Nonces used, with their expiry, until they expire (a used state that expired is refused
    /// as expired anyway).
    used: HashMap<u64, u64>,
}

impl Sealer {
    /// A sealer with `key`, counting time from `epoch` and nonces from `first_nonce` (random,
    /// and independent of the key: nonces are shown in every state).
    pub fn new(key: [u8; 32], epoch: Instant, first_nonce: u64) -> Sealer {
        Sealer {
            key,
            epoch,
            next_nonce: first_nonce >> 1,
            used: HashMap::new(),
        }
    }

    /// A state for `tool` with arguments of `digest`, good until `now + lifetime`.
    pub fn seal(
        &mut self,
        tool: &str,
        digest: &[u8; 32],
        now: Instant,
        lifetime: Duration,
    ) -> String {
        self.seal_numbered(tool, digest, now, lifetime).0
    }

    /// [`Sealer::seal`], with the state's nonce, which [`Sealer::open_numbered`] gives back.
    pub fn seal_numbered(
        &mut self,
        tool: &str,
        digest: &[u8; 32],
        now: Instant,
        lifetime: Duration,
    ) -> (String, u64) {
        let nonce = self.next_nonce;
        self.next_nonce = self.next_nonce.wrapping_add(1);
        let expiry = self.millis(now).saturating_add(lifetime.as_millis() as u64);
        let mac = self.mac(tool, digest, expiry, nonce);
        (format!("{STATE_PREFIX}{nonce:x}.{expiry:x}.{mac}"), nonce)
    }

    /// Checks `state` against the retry's `tool` and `digest` at `now`, and uses it up.
    pub fn open(
        &mut self,
        state: &str,
        tool: &str,
        digest: &[u8; 32],
        now: Instant,
    ) -> Result<(), Broken> {
        self.open_numbered(state, tool, digest, now).map(|_| ())
    }

    /// [`Sealer::open`], giving the state's nonce.
    pub fn open_numbered(
        &mut self,
        state: &str,
        tool: &str,
        digest: &[u8; 32],
        now: Instant,
    ) -> Result<u64, Broken> {
        let rest = state.strip_prefix(STATE_PREFIX).ok_or(Broken::Forged)?;
        let mut parts = rest.split('.');
        let (Some(nonce), Some(expiry), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Broken::Forged);
        };
        let nonce = u64::from_str_radix(nonce, 16).map_err(|_| Broken::Forged)?;
        let expiry = u64::from_str_radix(expiry, 16).map_err(|_| Broken::Forged)?;
        let expected = self.mac(tool, digest, expiry, nonce);
        // Compared as HMAC outputs: both hex of the same length, and the comparison's time does
        // not matter because the attacker learns nothing from a wrong guess but "wrong".
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return Err(Broken::Forged);
        }
        let now_ms = self.millis(now);
        if now_ms >= expiry {
            return Err(Broken::Expired);
        }
        self.used.retain(|_, &mut until| until > now_ms);
        if self.used.insert(nonce, expiry).is_some() {
            return Err(Broken::Replayed);
        }
        Ok(nonce)
    }

    fn millis(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn mac(&self, tool: &str, digest: &[u8; 32], expiry: u64, nonce: u64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length works");
        mac.update(b"mcp-policy-proxy approval v1\0");
        mac.update(&(tool.len() as u64).to_le_bytes());
        mac.update(tool.as_bytes());
        mac.update(digest);
        mac.update(&expiry.to_le_bytes());
        mac.update(&nonce.to_le_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A key for this process: 32 bytes from the operating system's own random source, on every
/// platform (the `getrandom` crate). There is no other source: when the OS gives none, there
/// is no key, and approval by `requestState` is refused rather than sealed with something
/// weaker.
pub fn fresh_key() -> Result<[u8; 32], String> {
    key_from(getrandom::fill)
}

/// A key from `source`, which fills a buffer or fails.
pub fn key_from(
    source: impl FnOnce(&mut [u8]) -> Result<(), getrandom::Error>,
) -> Result<[u8; 32], String> {
    let mut key = [0; 32];
    source(&mut key).map_err(|err| format!("the OS random source failed: {err}"))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_opens_once_for_its_own_call_before_it_expires() {
        let start = Instant::now();
        let mut sealer = Sealer::new([7; 32], start, 99);
        let digest = [1; 32];
        let other = [2; 32];
        let minute = Duration::from_secs(60);
        let state = sealer.seal("valkey_write", &digest, start, minute);
        assert!(state.starts_with(STATE_PREFIX));

        assert_eq!(
            sealer.open(&state, "valkey_write", &other, start),
            Err(Broken::Forged)
        );
        assert_eq!(
            sealer.open(&state, "valkey_read", &digest, start),
            Err(Broken::Forged)
        );
        let mut edited = state.clone();
        edited.pop();
        edited.push(if state.ends_with('0') { '1' } else { '0' });
        assert_eq!(
            sealer.open(&edited, "valkey_write", &digest, start),
            Err(Broken::Forged)
        );
        // A later expiry written into the state breaks its seal.
        let parts: Vec<&str> = state.split('.').collect();
        let stretched = format!(
            "{}.{}.{}.ffffffff.{}",
            parts[0], parts[1], parts[2], parts[4]
        );
        assert_eq!(
            sealer.open(&stretched, "valkey_write", &digest, start),
            Err(Broken::Forged)
        );
        assert_eq!(
            sealer.open("garbage", "valkey_write", &digest, start),
            Err(Broken::Forged)
        );

        assert_eq!(
            sealer.open(&state, "valkey_write", &digest, start + minute),
            Err(Broken::Expired)
        );
        assert_eq!(sealer.open(&state, "valkey_write", &digest, start), Ok(()));
        assert_eq!(
            sealer.open(&state, "valkey_write", &digest, start),
            Err(Broken::Replayed)
        );

        // Another process (another key) cannot open it.
        let mut other_process = Sealer::new([8; 32], start, 5);
        let fresh = sealer.seal("valkey_write", &digest, start, minute);
        assert_eq!(
            other_process.open(&fresh, "valkey_write", &digest, start),
            Err(Broken::Forged)
        );
    }
}
