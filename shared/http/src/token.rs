//! A single-flight bearer-token cache with a minimum remaining lifetime: a token is handed out
//! only while it has at least that long to live, and when it must be renewed, concurrent
//! callers wait for one refresh instead of each fetching their own.

use snapwatch_core::config::Secret;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A bearer token. It is a credential: the workspace's one [`Secret`] wrapper, whose `Debug`
/// never prints it; `expose()` is the one way to read it, where it goes into a header.
pub type AccessToken = Secret<String>;

/// A freshly fetched token (or other credential `V`) and how long it lives from now.
#[derive(Debug, Clone)]
pub struct Token<V = AccessToken> {
    /// The bearer token or credentials.
    pub value: V,
    /// Its remaining lifetime when it was fetched; `Duration::MAX` for one that never expires
    /// (long-term access keys).
    pub lifetime: Duration,
}

struct Cached<V> {
    value: V,
    /// `None`: never expires.
    expires_at: Option<Instant>,
}

type Slot<V> = Arc<tokio::sync::Mutex<Option<Cached<V>>>>;

/// Tokens (or credentials `V`) per key (an audience, a resource; `()` when there is one), each
/// renewed once it has less than the minimum remaining lifetime left.
pub struct TokenCache<K, V = AccessToken> {
    min_remaining: Duration,
    slots: std::sync::Mutex<HashMap<K, Slot<V>>>,
}

impl<K, V> std::fmt::Debug for TokenCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("TokenCache")
            .field("min_remaining", &self.min_remaining)
            .finish_non_exhaustive()
    }
}

impl<K: Eq + Hash + Clone, V: Clone> TokenCache<K, V> {
    /// A cache that renews tokens with less than `min_remaining` left, so no request carries a
    /// token that expires in flight.
    pub fn new(min_remaining: Duration) -> Self {
        TokenCache {
            min_remaining,
            slots: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The cached token for `key`, or a new one from `fetch` when none has at least the
    /// minimum remaining lifetime. One `fetch` runs per key at a time; callers that arrive
    /// during it wait and share its token. A failed fetch caches nothing.
    pub async fn get<E, F, Fut>(&self, key: &K, fetch: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token<V>, E>>,
    {
        let slot = {
            // A poisoned map only means another caller panicked mid-insert; the map is intact.
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slots.entry(key.clone()).or_default().clone()
        };
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref() {
            let fresh = token
                .expires_at
                .is_none_or(|expires_at| expires_at > Instant::now() + self.min_remaining);
            if fresh {
                return Ok(token.value.clone());
            }
        }
        let fresh = fetch().await?;
        let value = fresh.value.clone();
        *cached = Some(Cached {
            value: fresh.value,
            // Too far ahead to represent: it never expires in this process's lifetime.
            expires_at: Instant::now().checked_add(fresh.lifetime),
        });
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn token(text: &str, lifetime_secs: u64) -> Token {
        Token {
            value: AccessToken::new(text.to_owned()),
            lifetime: Duration::from_secs(lifetime_secs),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_wait_for_one_refresh() {
        let cache = Arc::new(TokenCache::<()>::new(Duration::from_secs(60)));
        let fetches = Arc::new(AtomicU32::new(0));
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let (cache, fetches) = (cache.clone(), fetches.clone());
                tokio::spawn(async move {
                    cache
                        .get(&(), || async {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            Ok::<_, std::io::Error>(token("t1", 3600))
                        })
                        .await
                })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap().expose(), "t1");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_renewed_once_less_than_the_minimum_lifetime_remains() {
        let cache = TokenCache::<&str>::new(Duration::from_secs(60));
        let fetches = AtomicU32::new(0);
        let get = || async {
            cache
                .get(&"storage", || async {
                    let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
                    Ok::<_, std::io::Error>(token(&format!("t{n}"), 120))
                })
                .await
                .unwrap()
        };
        assert_eq!(get().await.expose(), "t1");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(get().await.expose(), "t1", "61 s left: still cached");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(get().await.expose(), "t2", "59 s left: renewed");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_fetch_caches_nothing_and_keys_are_apart() {
        let cache = TokenCache::<&str>::new(Duration::from_secs(60));
        let failed = cache
            .get(&"a", || async {
                Err::<Token, _>(std::io::Error::other("503"))
            })
            .await;
        assert!(failed.is_err());
        let a = cache
            .get(&"a", || async {
                Ok::<_, std::io::Error>(token("ta", 3600))
            })
            .await
            .unwrap();
        let b = cache
            .get(&"b", || async {
                Ok::<_, std::io::Error>(token("tb", 3600))
            })
            .await
            .unwrap();
        assert_eq!((a.expose().as_str(), b.expose().as_str()), ("ta", "tb"));
    }

    #[tokio::test]
    async fn a_credential_without_expiry_is_fetched_once() {
        let cache = TokenCache::<(), String>::new(Duration::from_secs(300));
        let fetches = AtomicU32::new(0);
        for _ in 0..3 {
            let value = cache
                .get(&(), || async {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(Token {
                        value: "long-term key".to_owned(),
                        lifetime: Duration::MAX,
                    })
                })
                .await
                .unwrap();
            assert_eq!(value, "long-term key");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn debug_never_prints_a_token() {
        let text = format!("{:?}", token("secret-bearer-value", 10));
        assert!(!text.contains("secret-bearer-value"), "{text}");
        let cache = TokenCache::<()>::new(Duration::from_secs(1));
        assert!(!format!("{cache:?}").contains("secret"));
    }
}
