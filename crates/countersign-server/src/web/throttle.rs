//! Throttling of failed sign-ins, per account and per address: after a few failures in a
//! window, further attempts are refused (without checking the password) for a delay that
//! doubles with each failure, up to a cap. Kept in memory: a restart forgets it, which costs
//! an attacker a restart they cannot cause. A success clears the account's count.
//!
//! Both are needed: per account stops guessing one person's password from many addresses,
//! per address stops one machine trying a few passwords on many accounts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

/// Failures allowed before the delays start.
const ACCOUNT_FREE_FAILURES: u32 = 5;
const ADDRESS_FREE_FAILURES: u32 = 20;
/// Failures older than this are forgotten.
const WINDOW: TimeDelta = TimeDelta::minutes(15);
/// The first delay, doubled with each further failure.
const FIRST_DELAY: TimeDelta = TimeDelta::seconds(30);
const MAX_DELAY: TimeDelta = TimeDelta::minutes(15);
/// Entries kept at most per map; past it, entries whose window passed are dropped first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
}

/// The throttle's memory.
#[derive(Debug, Default)]
pub struct Throttle {
    accounts: Mutex<HashMap<String, Failures>>,
    addresses: Mutex<HashMap<IpAddr, Failures>>,
}

/// Why an attempt is refused, and until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub until: DateTime<Utc>,
    /// `true`: too many failures for this account; `false`: from this address.
    pub account: bool,
}

impl Throttle {
    /// May `account` try to sign in from `address` at `now`?
    pub fn check(
        &self,
        account: &str,
        address: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), Throttled> {
        if let Some(until) = locked(&lock(&self.accounts), &account.to_ascii_lowercase(), now) {
            return Err(Throttled {
                until,
                account: true,
            });
        }
        if let Some(address) = address
            && let Some(until) = locked(&lock(&self.addresses), &address, now)
        {
            return Err(Throttled {
                until,
                account: false,
            });
        }
        Ok(())
    }

    /// Counts a failed attempt.
    pub fn failed(&self, account: &str, address: Option<IpAddr>, now: DateTime<Utc>) {
        count(
            &mut lock(&self.accounts),
            account.to_ascii_lowercase(),
            now,
            ACCOUNT_FREE_FAILURES,
        );
        if let Some(address) = address {
            count(
                &mut lock(&self.addresses),
                address,
                now,
                ADDRESS_FREE_FAILURES,
            );
        }
    }

    /// A successful sign-in clears the account's failures (not the address's).
    pub fn succeeded(&self, account: &str) {
        lock(&self.accounts).remove(&account.to_ascii_lowercase());
    }
}

fn lock<K>(map: &Mutex<HashMap<K, Failures>>) -> std::sync::MutexGuard<'_, HashMap<K, Failures>> {
    // Plain counters: a panic elsewhere cannot leave them torn.
    map.lock().unwrap_or_else(|p| p.into_inner())
}

fn locked<K: std::hash::Hash + Eq>(
    map: &HashMap<K, Failures>,
    key: &K,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    map.get(key)
        .and_then(|f| f.locked_until)
        .filter(|&until| until > now)
}

fn count<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Failures>,
    key: K,
    now: DateTime<Utc>,
    free: u32,
) {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, f| now - f.last < WINDOW);
        if map.len() >= MAX_ENTRIES {
            // Still full of fresh failures (an attack from everywhere): forget the oldest
            // half rather than grow without bound.
            let mut times: Vec<DateTime<Utc>> = map.values().map(|f| f.last).collect();
            times.sort();
            let median = times[times.len() / 2];
            map.retain(|_, f| f.last > median);
        }
    }
    let entry = map.entry(key).or_insert(Failures {
        count: 0,
        last: now,
        locked_until: None,
    });
    if now - entry.last >= WINDOW {
        entry.count = 0;
        entry.locked_until = None;
    }
    entry.count += 1;
    entry.last = now;
    if entry.count >= free {
        let doublings = (entry.count - free).min(16);
        let delay = (FIRST_DELAY * 2i32.pow(doublings)).min(MAX_DELAY);
        entry.locked_until = Some(now + delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn accounts_and_addresses_are_throttled_apart() {
        let throttle = Throttle::default();
        let home: IpAddr = "192.0.2.1".parse().unwrap();
        let away: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..4 {
            throttle.failed("rita", Some(home), at(0));
        }
        assert_eq!(throttle.check("rita", Some(home), at(0)), Ok(()));
        throttle.failed("Rita", Some(home), at(0));
        // The fifth failure locks the account, from any address, for 30 s.
        let locked = Err(Throttled {
            until: at(30),
            account: true,
        });
        assert_eq!(throttle.check("RITA", Some(away), at(1)), locked);
        assert_eq!(throttle.check("sam", Some(home), at(1)), Ok(()));
        assert_eq!(throttle.check("rita", Some(away), at(30)), Ok(()));
        // The next failure doubles the delay.
        throttle.failed("rita", Some(away), at(30));
        assert_eq!(
            throttle.check("rita", None, at(89)).unwrap_err().until,
            at(90)
        );
        // Success clears the account, not the address.
        throttle.succeeded("rita");
        assert_eq!(throttle.check("rita", None, at(31)), Ok(()));
        // Twenty failures from one address lock the address for every account.
        let roaming: IpAddr = "192.0.2.3".parse().unwrap();
        for n in 0..20 {
            throttle.failed(&format!("user{n}"), Some(roaming), at(100));
        }
        assert_eq!(
            throttle.check("someone-else", Some(roaming), at(101)),
            Err(Throttled {
                until: at(130),
                account: false
            })
        );
        assert_eq!(throttle.check("someone-else", Some(home), at(101)), Ok(()));
        // Failures older than the window are forgotten.
        throttle.failed("tom", None, at(0));
        for _ in 0..4 {
            throttle.failed("tom", None, at(1000));
        }
        assert_eq!(throttle.check("tom", None, at(1000)), Ok(()));
    }
}
