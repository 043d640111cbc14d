//! Policies' SQL. Every write reads the whole policy, applies the patch in [`Policy::apply`]
//! (where the rules are) and writes it back, so a rule that spans fields sees the final values.

use serde_json::{json, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::policy::{AuthenticationStrategy, Policy, PolicyPatch};
use crate::write::WriteTx;

/// The settable columns, in the order of [`settable`].
const SETTABLE: &[&str] = &[
    "name",
    "duration_secs",
    "expiration_basis",
    "expiration_strategy",
    "renewal_basis",
    "authentication_strategy",
    "floating",
    "strict",
    "max_machines",
    "max_cores",
    "max_memory",
    "max_disk",
    "max_processes",
    "max_users",
    "max_uses",
    "ip_limit",
    "overage_strategy",
    "machine_uniqueness_strategy",
    "machine_matching_strategy",
    "require_heartbeat",
    "heartbeat_duration_secs",
    "heartbeat_cull_strategy",
    "heartbeat_resurrection_strategy",
    "heartbeat_basis",
    "require_check_in",
    "check_in_interval",
    "check_in_interval_count",
    "required_scopes",
    "one_time_use",
    "protected",
    "use_pool",
    "metadata",
];

fn settable<'a>(p: &'a Policy, metadata: &'a Value) -> [&'a (dyn ToSql + Sync); 32] {
    [
        &p.name,
        &p.duration_secs,
        &p.expiration_basis,
        &p.expiration_strategy,
        &p.renewal_basis,
        &p.authentication_strategy,
        &p.floating,
        &p.strict,
        &p.max_machines,
        &p.max_cores,
        &p.max_memory,
        &p.max_disk,
        &p.max_processes,
        &p.max_users,
        &p.max_uses,
        &p.ip_limit,
        &p.overage_strategy,
        &p.machine_uniqueness_strategy,
        &p.machine_matching_strategy,
        &p.require_heartbeat,
        &p.heartbeat_duration_secs,
        &p.heartbeat_cull_strategy,
        &p.heartbeat_resurrection_strategy,
        &p.heartbeat_basis,
        &p.require_check_in,
        &p.check_in_interval,
        &p.check_in_interval_count,
        &p.required_scopes,
        &p.one_time_use,
        &p.protected,
        &p.use_pool,
        metadata,
    ]
}

pub(super) fn columns() -> String {
    format!(
        "id, account_id, app_id, is_default, {}, created_at, updated_at",
        SETTABLE.join(", ")
    )
}

pub(super) fn from_row(r: &Row) -> StoreResult<Policy> {
    Ok(Policy {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        app_id: r.try_get("app_id")?,
        name: r.try_get("name")?,
        is_default: r.try_get("is_default")?,
        duration_secs: r.try_get("duration_secs")?,
        expiration_basis: r.try_get("expiration_basis")?,
        expiration_strategy: r.try_get("expiration_strategy")?,
        renewal_basis: r.try_get("renewal_basis")?,
        authentication_strategy: r.try_get("authentication_strategy")?,
        floating: r.try_get("floating")?,
        strict: r.try_get("strict")?,
        max_machines: r.try_get("max_machines")?,
        max_cores: r.try_get("max_cores")?,
        max_memory: r.try_get("max_memory")?,
        max_disk: r.try_get("max_disk")?,
        max_processes: r.try_get("max_processes")?,
        max_users: r.try_get("max_users")?,
        max_uses: r.try_get("max_uses")?,
        ip_limit: r.try_get("ip_limit")?,
        overage_strategy: r.try_get("overage_strategy")?,
        machine_uniqueness_strategy: r.try_get("machine_uniqueness_strategy")?,
        machine_matching_strategy: r.try_get("machine_matching_strategy")?,
        require_heartbeat: r.try_get("require_heartbeat")?,
        heartbeat_duration_secs: r.try_get("heartbeat_duration_secs")?,
        heartbeat_cull_strategy: r.try_get("heartbeat_cull_strategy")?,
        heartbeat_resurrection_strategy: r.try_get("heartbeat_resurrection_strategy")?,
        heartbeat_basis: r.try_get("heartbeat_basis")?,
        require_check_in: r.try_get("require_check_in")?,
        check_in_interval: r.try_get("check_in_interval")?,
        check_in_interval_count: r.try_get("check_in_interval_count")?,
        required_scopes: r.try_get("required_scopes")?,
        one_time_use: r.try_get("one_time_use")?,
        protected: r.try_get("protected")?,
        use_pool: r.try_get("use_pool")?,
        // The column is constrained to JSON written from an object.
        metadata: match r.try_get::<_, Value>("metadata")? {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        },
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const NAME_TAKEN: &str = "a policy with this name already exists in this app";

/// Creates a policy in one of the caller's apps (`NotFound("app")` for anyone else's).
pub async fn create(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    patch: &PolicyPatch,
) -> StoreResult<Policy> {
    super::apps::owned(wtx, app_id).await?;
    let mut policy = Policy::new(wtx.account_id(), app_id, String::new());
    if patch.name.is_none() {
        return Err(StoreError::Invalid("name is required".into()));
    }
    policy.apply(patch).map_err(StoreError::Invalid)?;
    let created = insert(wtx, &policy).await?;
    wtx.audit(
        "policy.create",
        "policy",
        Some(created.id.to_string()),
        json!({"app_id": app_id, "name": created.name}),
    );
    Ok(created)
}

/// The name of the policy every app is made with.
pub const DEFAULT_NAME: &str = "Default";

/// The default policy of a new app (see migration 0009): node-locked like a KeyAuth key with
/// one HWID, redeemable once, authenticated by the key itself.
pub(crate) async fn create_default(wtx: &mut WriteTx<'_>, app_id: Uuid) -> StoreResult<Policy> {
    let mut policy = Policy::new(wtx.account_id(), app_id, DEFAULT_NAME.into());
    policy.is_default = true;
    policy.authentication_strategy = AuthenticationStrategy::License;
    policy.max_uses = Some(1);
    insert(wtx, &policy).await
}

async fn insert(wtx: &mut WriteTx<'_>, policy: &Policy) -> StoreResult<Policy> {
    let metadata = Value::Object(policy.metadata.clone());
    let placeholders: Vec<String> = (5..5 + SETTABLE.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO policies (id, account_id, app_id, is_default, {}) VALUES ($1, $2, $3, $4, {}) RETURNING {}",
        SETTABLE.join(", "),
        placeholders.join(", "),
        columns()
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &policy.id,
        &policy.account_id,
        &policy.app_id,
        &policy.is_default,
    ];
    params.extend(settable(policy, &metadata));
    let row = wtx
        .tx()
        .query_one(&sql, &params)
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique(NAME_TAKEN))?;
    from_row(&row)
}

/// The caller's policies, of one app or of all, oldest first.
pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Option<Uuid>,
) -> StoreResult<Vec<Policy>> {
    c.query(
        &format!(
            "SELECT {} FROM policies WHERE account_id = $1 AND ($2::uuid IS NULL OR app_id = $2)
             ORDER BY created_at, id",
            columns()
        ),
        &[&account_id, &app_id],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Tenant-scoped lookup: another account's policy is simply not found.
pub async fn get<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id: Uuid,
) -> StoreResult<Policy> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {} FROM policies WHERE id = $1 AND account_id = $2",
                columns()
            ),
            &[&id, &account_id],
        )
        .await?
        .ok_or(StoreError::NotFound("policy"))?;
    from_row(&row)
}

pub async fn update(wtx: &mut WriteTx<'_>, id: Uuid, patch: &PolicyPatch) -> StoreResult<Policy> {
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "SELECT {} FROM policies WHERE id = $1 AND account_id = $2 FOR UPDATE",
                columns()
            ),
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("policy"))?;
    let mut policy = from_row(&row)?;
    policy.apply(patch).map_err(StoreError::Invalid)?;
    let metadata = Value::Object(policy.metadata.clone());
    let assignments: Vec<String> = SETTABLE
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 2))
        .collect();
    let sql = format!(
        "UPDATE policies SET {}, updated_at = now() WHERE id = $1 RETURNING {}",
        assignments.join(", "),
        columns()
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
    params.extend(settable(&policy, &metadata));
    let row = wtx
        .tx()
        .query_one(&sql, &params)
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique(NAME_TAKEN))?;
    let updated = from_row(&row)?;
    // The licenses that follow this policy hold its limits in the validators' caches.
    wtx.invalidate(Invalidation::Policy {
        app: updated.app_id,
    });
    wtx.audit(
        "policy.update",
        "policy",
        Some(id.to_string()),
        json!({"app_id": updated.app_id, "name": updated.name}),
    );
    Ok(updated)
}

/// Deletes a policy no license follows; the default policy stays while its app does.
pub async fn delete(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "SELECT is_default, (SELECT count(*) FROM licenses l WHERE l.policy_id = p.id) AS licenses
               FROM policies p WHERE id = $1 AND account_id = $2 FOR UPDATE",
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("policy"))?;
    if row.try_get::<_, bool>("is_default")? {
        return Err(StoreError::Conflict(
            "the app's default policy cannot be deleted".into(),
        ));
    }
    let licenses: i64 = row.try_get("licenses")?;
    if licenses > 0 {
        return Err(StoreError::Conflict(format!(
            "{licenses} licenses follow this policy; move them to another policy or delete them first"
        )));
    }
    // A license made meanwhile (the count took no lock on it) fails the foreign key instead.
    let row = wtx
        .tx()
        .query_one(
            "DELETE FROM policies WHERE id = $1 RETURNING app_id, name",
            &[&id],
        )
        .await
        .map_err(|e| StoreError::from(e).conflict_on_foreign_key("licenses follow this policy"))?;
    let (app_id, name): (Uuid, String) = (row.try_get(0)?, row.try_get(1)?);
    wtx.audit(
        "policy.delete",
        "policy",
        Some(id.to_string()),
        json!({"app_id": app_id, "name": name}),
    );
    Ok(())
}
