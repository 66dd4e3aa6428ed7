//! Connecting to a PostgreSQL store that is not up yet waits for it, within a bound.

mod support;

use std::time::{Duration, Instant};

use tower_lro_fleet::{FleetErrorKind, Store};

use support::Postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_waits_for_a_server_that_starts_later() {
    let pg = Postgres::init();
    let url = pg.url();
    let begun = Instant::now();
    let connecting = tokio::spawn(async move { Store::postgres(&url).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !connecting.is_finished(),
        "gave up while the server was down"
    );
    pg.start_again();
    let store = tokio::time::timeout(Duration::from_secs(20), connecting)
        .await
        .expect("still connecting 20 s after the server started")
        .unwrap()
        .unwrap();
    assert!(begun.elapsed() >= Duration::from_millis(1500));
    // The schema is set up: apalis's table and the fleet's quarantine are there.
    let pool = store.postgres_pool().unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables
         WHERE (table_schema, table_name) IN (('apalis', 'jobs'), ('tower_lro_fleet', 'quarantine'))",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(tables, 2);
    // What waiting cannot fix fails at once: a database that does not exist.
    let begun = Instant::now();
    let missing = format!("{}missing", pg.url().strip_suffix("postgres").unwrap());
    let error = Store::postgres_within(&missing, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), FleetErrorKind::Store);
    assert!(
        begun.elapsed() < Duration::from_secs(2),
        "{:?}",
        begun.elapsed()
    );
    // The server runs with its durable defaults.
    for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
        let value: String = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(setting)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(value, "on", "{setting}");
    }
}

#[tokio::test]
async fn connecting_gives_up_after_the_bound() {
    let pg = Postgres::init(); // never started: its port refuses connections
    let begun = Instant::now();
    let error = Store::postgres_within(&pg.url(), Duration::from_secs(1))
        .await
        .unwrap_err();
    let took = begun.elapsed();
    assert_eq!(error.kind(), FleetErrorKind::Store);
    assert!(error.to_string().contains("within"), "{error}");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn a_bad_url_fails_at_once() {
    let begun = Instant::now();
    let error = Store::postgres_within("postgres://fleet@[::1/fleet", Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), FleetErrorKind::Store);
    assert!(begun.elapsed() < Duration::from_secs(1));
}
