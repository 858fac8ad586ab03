//! A third-party module in a few lines: API keys from an `x-api-key` header.
use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use authchain::account::{MemoryUserStore, Provisioning};
use authchain::chain::ModuleSettings;
use authchain::{
    AuthChain, AuthError, AuthRequest, Authenticator, Identity, LoginResult, OtherError, Outcome,
    RequestError,
};

struct ApiKeys {
    keys: HashMap<String, String>, // key → service name; a real module stores hashes
}

#[async_trait]
impl Authenticator for ApiKeys {
    fn id(&self) -> &str {
        "api-keys"
    }

    async fn authenticate(&self, request: &AuthRequest) -> Result<Outcome, AuthError> {
        let Some(key) = request.headers.get("x-api-key") else {
            return Ok(Outcome::Abstain); // not ours: the chain asks the next module
        };
        let key = key
            .to_str()
            .map_err(|e| AuthError::invalid_request(RequestError::module(self.id(), OtherError::new(e))))?;
        match self.keys.get(key) {
            Some(service) => Ok(Outcome::Authenticated(Identity::new(self.id(), service, service))),
            None => Err(AuthError::InvalidCredentials),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys = HashMap::from([("k-123".to_owned(), "billing-service".to_owned())]);
    let chain = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .module_with(
            ApiKeys { keys },
            ModuleSettings::new().provisioning(Provisioning::Create),
        )
        .build()?;
    let mut request = AuthRequest::new("127.0.0.1:9000".parse()?);
    request.headers.insert("x-api-key", "k-123".parse()?);
    if let LoginResult::Authenticated(principal) = chain.login(&request).await? {
        println!("signed in: {} via {}", principal.login, principal.module);
    }
    Ok(())
}
