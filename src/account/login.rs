//! How a typed login name finds an account.

use crate::StoreError;
use crate::account::{Account, UserStore};

/// Which account attribute a typed login name is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginAttribute {
    /// The login name (the default).
    #[default]
    Username,
    /// The email address.
    Email,
    /// The email address when the typed name contains `@`, else the login name.
    AutoDetectEmail,
}

/// The chain's rules for login names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginNames {
    /// Compare names case-insensitively (names only; passwords are always exact).
    pub case_insensitive: bool,
    /// Which attribute a typed name is compared with.
    pub attribute: LoginAttribute,
}

impl LoginNames {
    /// The form used for throttling keys: lower-cased when names are case-insensitive,
    /// so `Alice` and `alice` share a counter.
    pub fn normalize(&self, login: &str) -> String {
        if self.case_insensitive {
            login.to_lowercase()
        } else {
            login.to_owned()
        }
    }

    /// Finds the account a typed login name designates.
    pub async fn find(&self, store: &dyn UserStore, login: &str) -> Result<Option<Account>, StoreError> {
        let by_email = match self.attribute {
            LoginAttribute::Username => false,
            LoginAttribute::Email => true,
            LoginAttribute::AutoDetectEmail => login.contains('@'),
        };
        if by_email {
            store.find_by_email(login, self.case_insensitive).await
        } else {
            store.find_by_login(login, self.case_insensitive).await
        }
    }
}
