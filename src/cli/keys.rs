//! `reelay keys create|list|revoke`: key management straight on the catalog, for operators on a
//! machine that can reach it. A new key is printed once; only its hash is kept.

use clap::{Args, Subcommand};

use crate::{
    api::{hash_token, new_token},
    catalog::{self, ApiKeyRecord, Scope},
    config::StoreConfig,
    ids::KeyId,
};

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub store: StoreConfig,
    #[command(subcommand)]
    pub action: KeysAction,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key and print it (the only time it is shown).
    Create {
        /// Rights of the key: files:read, files:write, media:read, media:write, admin.
        #[arg(long = "scope", required = true, value_delimiter = ',', value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// A label to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| {
        let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown scope {s:?}; expected one of {}", all.join(", "))
    })
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    tokio::fs::create_dir_all(&args.store.data_dir).await?;
    let catalog = catalog::open(&args.store.database_url()).await?;
    match args.action {
        KeysAction::Create { mut scopes, name } => {
            scopes.sort();
            scopes.dedup();
            let (id, token) = new_token();
            catalog
                .insert_key(&ApiKeyRecord {
                    id: id.clone(),
                    name,
                    token_sha256: hex::encode(hash_token(&token)),
                    scopes,
                    created_at: catalog::now(),
                    revoked_at: None,
                })
                .await?;
            eprintln!("created {id}; store this key now, it is not shown again:");
            println!("{token}");
        }
        KeysAction::List => {
            println!("{:<26} {:<8} {:<40} name", "id", "state", "scopes");
            for key in catalog.list_keys().await? {
                let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
                let state = if key.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<26} {:<8} {:<40} {}",
                    key.id,
                    state,
                    scopes.join(","),
                    key.name
                );
            }
        }
        KeysAction::Revoke { id } => {
            let id = KeyId::parse(&id).ok_or_else(|| anyhow::anyhow!("{id:?} is not a key id"))?;
            anyhow::ensure!(catalog.revoke_key(&id).await?, "no active key {id}");
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}
