//! Answers kept until their nextUpdate, so a partner reconnecting all day
//! costs one responder query per validity period, not one per connection.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::wire::CertState;

/// A certificate, named by its issuer's DER name and its serial number.
pub(crate) type CacheKey = (Vec<u8>, Vec<u8>);

/// A bounded map: a flood of distinct certificates cannot grow it past
/// `capacity`.
#[derive(Debug)]
pub(crate) struct Cache {
    entries: Mutex<HashMap<CacheKey, (CertState, SystemTime)>>,
    capacity: usize,
}

impl Cache {
    pub fn new(capacity: usize) -> Self {
        Cache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The answer still valid at `now`, if any.
    pub fn get(&self, key: &CacheKey, now: SystemTime) -> Option<CertState> {
        let mut entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some((state, until)) if *until > now => Some(*state),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `state` until `until`. When full, expired answers go first,
    /// then an arbitrary one: the cost of a miss is one more query.
    pub fn put(&self, key: CacheKey, state: CertState, until: SystemTime, now: SystemTime) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, u)| *u > now);
            if entries.len() >= self.capacity {
                if let Some(victim) = entries.keys().next().cloned() {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(key, (state, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn answers_expire_and_the_cache_stays_bounded() {
        let now = SystemTime::now();
        let cache = Cache::new(2);
        let key = |n: u8| (vec![1], vec![n]);
        cache.put(key(1), CertState::Good, now + Duration::from_secs(60), now);
        assert_eq!(cache.get(&key(1), now), Some(CertState::Good));
        assert_eq!(cache.get(&key(1), now + Duration::from_secs(61)), None);
        for n in 0..10 {
            cache.put(
                key(n),
                CertState::Revoked,
                now + Duration::from_secs(60),
                now,
            );
        }
        assert_eq!(cache.entries.lock().unwrap().len(), 2);
        assert_eq!(cache.get(&key(9), now), Some(CertState::Revoked));
    }
}
