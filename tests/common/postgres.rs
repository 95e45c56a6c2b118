//! A fresh PostgreSQL schema per test, on the server REELAY_TEST_DATABASE_URL names (the
//! machine's own at 127.0.0.1:5432 by default; scripts/test starts a throwaway cluster and sets
//! the variable where none runs). Each catalog sees only its schema through `search_path`.

use std::str::FromStr;

use sqlx::{postgres::PgConnectOptions, Connection};

pub fn server_url() -> String {
    std::env::var("REELAY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Creates an empty schema and returns connect options whose search_path is that schema.
pub async fn fresh_schema() -> (PgConnectOptions, String) {
    let schema = format!(
        "t_{}",
        reelay::ids::random_secret(12)
            .to_lowercase()
            .replace(['-', '_'], "0")
    );
    let options =
        PgConnectOptions::from_str(&server_url()).expect("REELAY_TEST_DATABASE_URL parses");
    let mut admin = sqlx::PgConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is not reachable: {e}", server_url()));
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .expect("create schema");
    admin.close().await.ok();
    let url = format!(
        "{}{}options=-csearch_path%3D{schema}",
        server_url(),
        if server_url().contains('?') { "&" } else { "?" }
    );
    (options.options([("search_path", schema.as_str())]), url)
}
