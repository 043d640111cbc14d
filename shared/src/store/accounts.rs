use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::model::Account;
use crate::secrets;

const COLUMNS: &str = "id, public_id, username, email, plan, role, created_at";

fn from_row(r: &Row) -> Account {
    Account {
        id: r.get("id"),
        public_id: r.get("public_id"),
        username: r.get("username"),
        email: r.get("email"),
        plan: r.get("plan"),
        role: r.get("role"),
        created_at: r.get("created_at"),
    }
}

pub fn validate_username(username: &str) -> Result<(), StoreError> {
    let ok_len = (3..=64).contains(&username.len());
    let ok_chars = username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "username must be 3 to 64 characters of letters, digits, '_', '-', '.', '@'".into(),
        ))
    }
}

pub fn validate_password(password: &str) -> Result<(), StoreError> {
    if (8..=256).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "password must be 8 to 256 characters".into(),
        ))
    }
}

/// Creates an account (a tenant). `password_hash` is an argon2id PHC string.
pub async fn create<C: GenericClient + Sync>(
    c: &C,
    username: &str,
    email: Option<&str>,
    password_hash: &str,
) -> StoreResult<Account> {
    validate_username(username)?;
    let row = c
        .query_one(
            &format!(
                "INSERT INTO accounts (id, public_id, username, email, password_hash)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &secrets::new_public_id(),
                &username,
                &email,
                &password_hash,
            ],
        )
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique("username or email already taken"))?;
    Ok(from_row(&row))
}

pub async fn get<C: GenericClient + Sync>(c: &C, id: Uuid) -> StoreResult<Account> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM accounts WHERE id = $1"),
        &[&id],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("account"))
}

/// The account's stable integer id (Junkie's `user_id` and `identifier`).
pub async fn num_id<C: GenericClient + Sync>(c: &C, id: Uuid) -> StoreResult<i64> {
    c.query_opt("SELECT num_id FROM accounts WHERE id = $1", &[&id])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .ok_or(StoreError::NotFound("account"))
}

/// The account with this integer id (Junkie's `identifier`, sent by end users' scripts); `None`
/// when there is none. Unscoped: the validator's read.
pub async fn id_by_num<C: GenericClient + Sync>(c: &C, num_id: i64) -> StoreResult<Option<Uuid>> {
    Ok(
        c.query_opt("SELECT id FROM accounts WHERE num_id = $1", &[&num_id])
            .await?
            .map(|r| r.get(0)),
    )
}

/// The account a URL names, by id or by public id (Keygen's account id or slug).
pub async fn resolve<C: GenericClient + Sync>(c: &C, reference: &str) -> StoreResult<Option<Uuid>> {
    let by_id = reference.parse::<Uuid>().ok();
    let row = c
        .query_opt(
            "SELECT id FROM accounts WHERE id = $1 OR public_id = $2 LIMIT 1",
            &[&by_id, &reference],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

/// Looks an account up by username or email for login; returns it with its password hash.
pub async fn find_for_login<C: GenericClient + Sync>(
    c: &C,
    login: &str,
) -> StoreResult<Option<(Account, String)>> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {COLUMNS}, password_hash FROM accounts
                 WHERE username = $1 OR lower(email) = lower($1) LIMIT 1"
            ),
            &[&login],
        )
        .await?;
    Ok(row.map(|r| (from_row(&r), r.get("password_hash"))))
}

/// Replaces an account's password hash (an argon2id PHC string).
pub async fn set_password<C: GenericClient + Sync>(
    c: &C,
    id: Uuid,
    password_hash: &str,
) -> StoreResult<()> {
    let n = c
        .execute(
            "UPDATE accounts SET password_hash = $2 WHERE id = $1",
            &[&id, &password_hash],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("account"));
    }
    Ok(())
}

/// Creates an account with a given id, inside a caller's transaction (registration creates the
/// account and its first seller key atomically).
pub async fn create_with_id<C: GenericClient + Sync>(
    c: &C,
    id: Uuid,
    username: &str,
    email: Option<&str>,
    password_hash: &str,
) -> StoreResult<Account> {
    validate_username(username)?;
    if email.is_some_and(|e| e.len() > 254 || !e.contains('@')) {
        return Err(StoreError::Invalid("email must be a valid address".into()));
    }
    let row = c
        .query_one(
            &format!(
                "INSERT INTO accounts (id, public_id, username, email, password_hash)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &secrets::new_public_id(),
                &username,
                &email,
                &password_hash,
            ],
        )
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique("Username or email already exists"))?;
    Ok(from_row(&row))
}

/// The password hash of an account, for re-authentication (password change).
pub async fn password_hash<C: GenericClient + Sync>(c: &C, id: Uuid) -> StoreResult<String> {
    c.query_opt("SELECT password_hash FROM accounts WHERE id = $1", &[&id])
        .await?
        .map(|r| r.get(0))
        .ok_or(StoreError::NotFound("account"))
}

/// Totals across an account's apps.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct AccountStats {
    pub applications: i64,
    pub users: i64,
    pub licenses: i64,
    pub logs: i64,
}

pub async fn stats<C: GenericClient + Sync>(c: &C, id: Uuid) -> StoreResult<AccountStats> {
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM apps WHERE account_id = $1),
                    (SELECT count(*) FROM app_users WHERE account_id = $1),
                    (SELECT count(*) FROM licenses WHERE account_id = $1),
                    (SELECT count(*) FROM client_logs WHERE account_id = $1)",
            &[&id],
        )
        .await?;
    Ok(AccountStats {
        applications: r.get(0),
        users: r.get(1),
        licenses: r.get(2),
        logs: r.get(3),
    })
}

/// The Discord user id linked to the account for the admin portal's Discord login.
pub async fn discord_id<C: GenericClient + Sync>(c: &C, id: Uuid) -> StoreResult<Option<String>> {
    c.query_opt("SELECT discord_id FROM accounts WHERE id = $1", &[&id])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .ok_or(StoreError::NotFound("account"))
}

/// The account linked to this Discord user id (unique across accounts), if any.
pub async fn find_by_discord<C: GenericClient + Sync>(
    c: &C,
    discord_id: &str,
) -> StoreResult<Option<Account>> {
    if !super::account_users::is_discord_id(discord_id) {
        return Ok(None);
    }
    Ok(c.query_opt(
        &format!("SELECT {COLUMNS} FROM accounts WHERE discord_id = $1"),
        &[&discord_id],
    )
    .await?
    .map(|r| from_row(&r)))
}

/// Links the caller's account to a Discord user id (`None` unlinks); audited with the before
/// and after. A Discord user links to at most one account.
pub async fn set_discord_id(
    wtx: &mut crate::write::WriteTx<'_>,
    discord_id: Option<&str>,
) -> StoreResult<Option<String>> {
    if discord_id.is_some_and(|d| !super::account_users::is_discord_id(d)) {
        return Err(StoreError::Invalid(
            "discord_id must be a Discord user id (1 to 25 digits)".into(),
        ));
    }
    let account = wtx.account_id();
    let row = wtx
        .tx()
        .query_opt(
            "WITH before AS (SELECT discord_id FROM accounts WHERE id = $1 FOR UPDATE)
             UPDATE accounts SET discord_id = $2 WHERE id = $1
             RETURNING (SELECT discord_id FROM before)",
            &[&account, &discord_id],
        )
        .await
        .map_err(|e| {
            StoreError::from(e)
                .conflict_on_unique("this Discord account is already linked to another account")
        })?
        .ok_or(StoreError::NotFound("account"))?;
    let before: Option<String> = row.try_get(0)?;
    wtx.audit(
        "account.discord",
        "account",
        Some(account.to_string()),
        serde_json::json!({"before": {"discord_id": before}, "after": {"discord_id": discord_id}}),
    );
    Ok(discord_id.map(str::to_string))
}
