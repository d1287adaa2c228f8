//! Closing a store's connections never waits for a Redis that is gone: a daemon stopping while
//! its Redis is down closes its reading connection, its presence subscription and its client,
//! and exits, instead of waiting for a reconnection that may never come.

use std::time::Duration;

use sett_core::AgentName;
use sett_store::GroupStart;

/// Far above what closing takes; reached only if something waits for Redis to come back.
const LIVENESS: Duration = Duration::from_secs(30);

#[tokio::test]
async fn connections_close_while_redis_is_down() {
    let data = tempfile::tempdir().unwrap();
    let mut server = sett_testkit::RedisServer::start(data.path(), &[]);
    let redis = sett_testkit::redis_at(&server.url()).await;
    let store = redis.instance(&sett_testkit::instance_name());
    let consumer = store.group_consumer("cub:A", "A", GroupStart::End).await.unwrap();
    let presence = store.announce_presence(&AgentName::parse("A").unwrap()).await.unwrap();
    server.stop();
    // The clients know it is gone and are reconnecting, as a daemon's are when it is told to stop.
    assert!(redis.ping(Duration::from_secs(2)).await.is_err());
    assert!(store.artifact_count().await.is_err());

    let mut waited = Vec::new();
    if tokio::time::timeout(LIVENESS, presence.withdraw()).await.is_err() {
        waited.push("the presence subscription");
    }
    if tokio::time::timeout(LIVENESS, consumer.quit()).await.is_err() {
        waited.push("the group consumer's connection");
    }
    if tokio::time::timeout(LIVENESS, redis.quit()).await.is_err() {
        waited.push("the shared client");
    }
    assert!(waited.is_empty(), "closing these waited for the stopped Redis: {waited:?}");
}
