//! Ed25519 keys that sign KeyAuth 1.3 answers.
//!
//! The keys are deployment-wide (they belong to the operator, not to a tenant): exactly one is
//! primary, and an app signs with its pinned key or, when it has none, with the primary. Whenever
//! the primary changes, every unpinned app is first pinned to the outgoing primary, because its
//! shipped clients have that public key compiled in; the vendor moves an app to the new key
//! (`signing_key_id: null`) when they ship clients that know it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{Client, GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::signing::Ed25519Signer;
use crate::write::{Actor, WriteTx};

/// Arbitrary constant identifying the primary-key change among advisory locks (next to the
/// migration lock's `…01`).
const PRIMARY_LOCK: i64 = 0x6b65_7977_6172_6402;

/// The audit label of operator actions (CLI or startup), which belong to no tenant.
const OPERATOR: &str = "operator";

/// A signing key as shown to admins: never its seed.
#[derive(Debug, Clone, Serialize)]
pub struct SigningKey {
    pub id: Uuid,
    /// 64 hex characters: what vendors build into their 1.3 clients.
    pub public_key: String,
    pub is_primary: bool,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    /// Apps pinned to this key (the unpinned ones sign with the primary).
    pub apps_pinned: i64,
}

/// A usable key with its secret seed, for the validator's signer.
#[derive(Clone)]
pub struct SigningSeed {
    pub id: Uuid,
    pub seed: [u8; 32],
    pub is_primary: bool,
}

// Hand-written so a logged key set never carries a secret.
impl std::fmt::Debug for SigningSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningSeed")
            .field("id", &self.id)
            .field("seed", &"<redacted>")
            .field("is_primary", &self.is_primary)
            .finish()
    }
}

const COLUMNS: &str = "k.id, k.public_key, k.is_primary, k.created_at, k.retired_at,
    (SELECT count(*) FROM apps a WHERE a.signing_key_id = k.id
        AND ($1::uuid IS NULL OR a.account_id = $1)) AS apps_pinned";

fn from_row(r: &Row) -> SigningKey {
    SigningKey {
        id: r.get("id"),
        public_key: r.get("public_key"),
        is_primary: r.get("is_primary"),
        created_at: r.get("created_at"),
        retired_at: r.get("retired_at"),
        apps_pinned: r.get("apps_pinned"),
    }
}

async fn get<C: GenericClient + Sync>(c: &C, id: Uuid) -> StoreResult<SigningKey> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM signing_keys k WHERE k.id = $2"),
        &[&None::<Uuid>, &id],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("signing key"))
}

/// Every key, newest first, with the number of apps pinned to each across the deployment.
pub async fn list<C: GenericClient + Sync>(c: &C) -> StoreResult<Vec<SigningKey>> {
    list_counting(c, None).await
}

/// Every key, newest first, counting only the given tenant's pinned apps (what a tenant may see).
pub async fn list_for_tenant<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
) -> StoreResult<Vec<SigningKey>> {
    list_counting(c, Some(account_id)).await
}

async fn list_counting<C: GenericClient + Sync>(
    c: &C,
    account_id: Option<Uuid>,
) -> StoreResult<Vec<SigningKey>> {
    Ok(c.query(
        &format!("SELECT {COLUMNS} FROM signing_keys k ORDER BY k.created_at DESC, k.id"),
        &[&account_id],
    )
    .await?
    .iter()
    .map(from_row)
    .collect())
}

/// The keys that may sign (not retired), with their seeds: what a validator loads.
pub async fn active_seeds<C: GenericClient + Sync>(c: &C) -> StoreResult<Vec<SigningSeed>> {
    c.query(
        "SELECT id, seed, is_primary FROM signing_keys WHERE retired_at IS NULL
          ORDER BY is_primary DESC, created_at DESC, id",
        &[],
    )
    .await?
    .iter()
    .map(|r| {
        let id: Uuid = r.get("id");
        let seed: Vec<u8> = r.get("seed");
        // The column is CHECKed to 32 bytes; a mismatch means a hand-edited row.
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| StoreError::Invalid(format!("signing key {id} has a malformed seed")))?;
        Ok(SigningSeed {
            id,
            seed,
            is_primary: r.get("is_primary"),
        })
    })
    .collect()
}

/// Which key one of the tenant's apps signs with.
#[derive(Debug, Clone, Serialize)]
pub struct AppSigningKey {
    pub app_id: Uuid,
    pub app_name: String,
    pub key_id: Uuid,
    pub public_key: String,
    /// True when the app is pinned to this key; false when it follows the primary.
    pub pinned: bool,
}

/// The key each of the tenant's apps signs with (its pinned key, else the primary).
pub async fn for_account<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
) -> StoreResult<Vec<AppSigningKey>> {
    Ok(c.query(
        "SELECT a.id, a.name, k.id AS key_id, k.public_key, a.signing_key_id IS NOT NULL AS pinned
               FROM apps a
               JOIN signing_keys k ON k.id = coalesce(
                    a.signing_key_id, (SELECT id FROM signing_keys WHERE is_primary))
              WHERE a.account_id = $1
              ORDER BY a.created_at, a.id",
        &[&account_id],
    )
    .await?
    .iter()
    .map(|r| AppSigningKey {
        app_id: r.get(0),
        app_name: r.get(1),
        key_id: r.get(2),
        public_key: r.get(3),
        pinned: r.get(4),
    })
    .collect())
}

/// Operator changes belong to no tenant: the actor's account is never used, because no
/// tenant-scoped store call runs in these transactions and the audit rows are written per
/// affected tenant by [`promote`].
fn operator() -> Actor {
    Actor {
        origin: Default::default(),
        account_id: Uuid::nil(),
        label: OPERATOR.into(),
    }
}

/// Makes sure a primary key exists, at startup. With `configured_seed`, that key becomes (or
/// stays) the primary; without, an existing primary is kept or a fresh one generated. Several
/// processes starting at once agree on one primary.
pub async fn ensure_primary(
    client: &mut Client,
    configured_seed: Option<[u8; 32]>,
) -> StoreResult<SigningKey> {
    let mut w = WriteTx::begin(client, operator()).await?;
    lock(&w).await?;
    let current = primary_id(&w).await?;
    let id = match (configured_seed, current) {
        (None, Some(id)) => id,
        (None, None) => promote(&mut w, &Ed25519Signer::generate()).await?,
        (Some(seed), current) => {
            let signer =
                Ed25519Signer::from_seed(&seed).map_err(|e| StoreError::Invalid(e.to_string()))?;
            let existing = w
                .tx()
                .query_opt(
                    "SELECT id FROM signing_keys WHERE public_key = $1",
                    &[&signer.public_key_hex()],
                )
                .await?
                .map(|r| r.get::<_, Uuid>(0));
            match existing {
                // The usual restart: the configured key already is the primary.
                Some(id) if Some(id) == current => id,
                _ => promote(&mut w, &signer).await?,
            }
        }
    };
    let key = get(w.tx(), id).await?;
    w.commit().await?;
    Ok(key)
}

/// Replaces the primary with a freshly generated key. Apps that signed with the old primary are
/// pinned to it, so clients shipped with its public key keep verifying.
pub async fn rotate(client: &mut Client) -> StoreResult<SigningKey> {
    let mut w = WriteTx::begin(client, operator()).await?;
    lock(&w).await?;
    let id = promote(&mut w, &Ed25519Signer::generate()).await?;
    let key = get(w.tx(), id).await?;
    w.commit().await?;
    Ok(key)
}

/// Takes a key out of service. The primary and keys that apps are still pinned to are refused:
/// their clients would stop verifying.
pub async fn retire(client: &mut Client, id: Uuid) -> StoreResult<SigningKey> {
    let tx = client.transaction().await?;
    // FOR UPDATE conflicts with the FOR KEY SHARE lock that pinning an app takes on this row, so
    // an app pinned concurrently is either counted below or waits until the key is retired.
    let row = tx
        .query_opt(
            "SELECT is_primary, retired_at IS NOT NULL FROM signing_keys WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .ok_or(StoreError::NotFound("signing key"))?;
    let (is_primary, retired): (bool, bool) = (row.get(0), row.get(1));
    if is_primary {
        return Err(StoreError::Conflict(
            "the primary signing key cannot be retired; rotate first".into(),
        ));
    }
    if !retired {
        let pinned: i64 = tx
            .query_one(
                "SELECT count(*) FROM apps WHERE signing_key_id = $1",
                &[&id],
            )
            .await?
            .get(0);
        if pinned > 0 {
            return Err(StoreError::Conflict(format!(
                "{pinned} app(s) are still pinned to this signing key; move them to the primary \
                 (PATCH the app with \"signing_key_id\": null) before retiring it"
            )));
        }
        // No app signs with it, so no validator answer changes: nothing to invalidate.
        tx.execute(
            "UPDATE signing_keys SET retired_at = now() WHERE id = $1",
            &[&id],
        )
        .await?;
    }
    let key = get(&tx, id).await?;
    tx.commit().await?;
    Ok(key)
}

/// Serialises primary changes between processes; released at commit or rollback.
async fn lock(w: &WriteTx<'_>) -> StoreResult<()> {
    w.tx()
        .execute("SELECT pg_advisory_xact_lock($1)", &[&PRIMARY_LOCK])
        .await?;
    Ok(())
}

async fn primary_id(w: &WriteTx<'_>) -> StoreResult<Option<Uuid>> {
    Ok(w.tx()
        .query_opt("SELECT id FROM signing_keys WHERE is_primary", &[])
        .await?
        .map(|r| r.get(0)))
}

/// Makes `signer`'s key the primary (inserting it, or reviving it if it was retired), after
/// pinning every unpinned app to the outgoing primary and demoting it. Call under [`lock`].
async fn promote(w: &mut WriteTx<'_>, signer: &Ed25519Signer) -> StoreResult<Uuid> {
    let old = primary_id(w).await?;
    let mut pinned = 0;
    if let Some(old) = old {
        pinned = w
            .tx()
            .query_one(
                "WITH pinned AS (
                     UPDATE apps SET signing_key_id = $1, updated_at = now()
                      WHERE signing_key_id IS NULL RETURNING id, account_id
                 ), audited AS (
                     INSERT INTO audit_log (account_id, actor, action, target_type, target_id, details)
                     SELECT account_id, $2::text, 'app.pin_signing_key', 'signing_key', $3::text,
                            jsonb_build_object('apps', jsonb_agg(id ORDER BY id),
                                               'reason', 'the primary signing key changed')
                       FROM pinned GROUP BY account_id
                 )
                 SELECT count(*) FROM pinned",
                &[&old, &OPERATOR, &old.to_string()],
            )
            .await?
            .get::<_, i64>(0);
        w.tx()
            .execute(
                "UPDATE signing_keys SET is_primary = false WHERE id = $1",
                &[&old],
            )
            .await?;
    }
    let public_key = signer.public_key_hex();
    let id: Uuid = w
        .tx()
        .query_one(
            "INSERT INTO signing_keys (id, seed, public_key, is_primary) VALUES ($1, $2, $3, true)
             ON CONFLICT (public_key) DO UPDATE SET is_primary = true, retired_at = NULL
             RETURNING id",
            &[&Uuid::new_v4(), &signer.seed().as_slice(), &public_key],
        )
        .await?
        .get(0);
    // Validators hold the key set and resolve unpinned apps to the primary, so a new primary (the
    // first one included) changes how apps sign; the pinned apps changed too.
    w.invalidate(Invalidation::All);
    tracing::info!(key = %id, %public_key, previous = ?old, apps_pinned_to_previous = pinned,
        "primary signing key changed");
    Ok(id)
}
