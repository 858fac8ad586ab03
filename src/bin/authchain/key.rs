//! `key add|list|revoke`: public keys for key-based login, in the configured store.

use std::path::PathBuf;

use authchain::account::{KeyFamily, KeyId, NewPublicKey};
use authchain::config::Config;
use authchain::jose::{RingJwk, RingKeyType};

use crate::user::seconds;

/// The largest key file `key add` reads.
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

pub enum KeyAction {
    Add { file: PathBuf, label: Option<String> },
    List { json: bool },
    Revoke { key: String },
}

/// A PEM public key file as DER, checked (size before reading, then parsed).
fn read_public_key(file: &std::path::Path) -> Result<(KeyFamily, Vec<u8>), String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", file.display());
    let size = std::fs::metadata(file).map_err(cannot)?.len();
    if size > MAX_KEY_FILE_BYTES {
        return Err(format!(
            "{}: larger than {MAX_KEY_FILE_BYTES} bytes, not a public key",
            file.display()
        ));
    }
    let pem = std::fs::read_to_string(file).map_err(cannot)?;
    let key = RingJwk::from_public_key_pem(&pem, None).map_err(|e| format!("{}: {e}", file.display()))?;
    let family = match key.kind() {
        RingKeyType::Rsa => KeyFamily::Rsa,
        RingKeyType::P256 => KeyFamily::P256,
        RingKeyType::Ed25519 => KeyFamily::Ed25519,
        _ => {
            return Err(format!(
                "{}: key login accepts RSA, EC P-256 and Ed25519 keys",
                file.display()
            ));
        }
    };
    // Parsed above: the same block, as DER, is what the store keeps.
    let (_, der) = spki::der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|_| format!("{}: not a PEM public key", file.display()))?;
    Ok((family, der))
}

pub async fn key(path: PathBuf, login: String, action: KeyAction) -> Result<(), String> {
    let config = Config::from_file_with_env(&path).map_err(|e| e.to_string())?;
    let stores = config.open_stores().await.map_err(|e| e.to_string())?;
    let store = stores.users().clone();
    let account = crate::user::find(store.as_ref(), &login).await?;
    match action {
        KeyAction::Add { file, label } => {
            let (family, der) = read_public_key(&file)?;
            let mut new = NewPublicKey::new(family, der);
            if let Some(label) = label {
                new = new.label(label);
            }
            let key = store
                .add_public_key(&account.id, new)
                .await
                .map_err(|e| e.to_string())?;
            println!("{} {} {}", key.id, key.family, key.fingerprint());
        }
        KeyAction::List { json } => {
            let keys = store.public_keys(&account.id).await.map_err(|e| e.to_string())?;
            if json {
                let list: Vec<serde_json::Value> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "id": k.id.0,
                            "family": k.family.as_str(),
                            "fingerprint": k.fingerprint(),
                            "label": k.label,
                            "created_at": seconds(k.created_at),
                            "revoked_at": k.revoked_at.map(seconds),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for k in &keys {
                    let state = match k.revoked_at {
                        Some(at) => format!("revoked {}", seconds(at)),
                        None => "active".into(),
                    };
                    println!(
                        "{}\t{}\t{}\t{}\t{:?}",
                        k.id,
                        k.family,
                        k.fingerprint(),
                        state,
                        k.label.as_deref().unwrap_or("")
                    );
                }
            }
        }
        KeyAction::Revoke { key } => {
            let revoked = store
                .revoke_public_key(&account.id, &KeyId(key), std::time::SystemTime::now())
                .await
                .map_err(|e| e.to_string())?;
            println!("{} revoked", revoked.id);
        }
    }
    Ok(())
}
