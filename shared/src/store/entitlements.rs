//! Entitlements' SQL: the account's named features, and which policies and licenses grant them.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::model::{check_metadata, Entitlement};
use crate::write::WriteTx;

const COLUMNS: &str = "e.id, e.account_id, e.name, e.code, e.metadata, e.created_at, e.updated_at";
/// Entitlements attached in one call.
pub const MAX_ATTACH: usize = 100;

fn from_row(r: &Row) -> StoreResult<Entitlement> {
    Ok(Entitlement {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        name: r.try_get("name")?,
        code: r.try_get("code")?,
        metadata: match r.try_get::<_, Value>("metadata")? {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitlementPatch {
    pub name: Option<String>,
    pub code: Option<String>,
    pub metadata: Option<Map<String, Value>>,
}

const CODE_TAKEN: &str = "an entitlement with this code already exists";

fn check_name(n: &str) -> StoreResult<String> {
    let n = n.trim();
    if n.is_empty() || n.chars().count() > 100 {
        return Err(StoreError::Invalid(
            "name must be 1 to 100 characters".into(),
        ));
    }
    Ok(n.to_string())
}

fn check_code(c: &str) -> StoreResult<String> {
    let ok = !c.is_empty()
        && c.len() <= 64
        && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "_.:-".contains(ch));
    if !ok {
        return Err(StoreError::Invalid(
            "code must be 1 to 64 characters: letters, digits and _ . : - (starting with a letter or digit)"
                .into(),
        ));
    }
    Ok(c.to_string())
}

pub async fn create(wtx: &mut WriteTx<'_>, p: &EntitlementPatch) -> StoreResult<Entitlement> {
    let name = check_name(p.name.as_deref().unwrap_or(""))?;
    let code = check_code(
        p.code
            .as_deref()
            .ok_or_else(|| StoreError::Invalid("code is required".into()))?,
    )?;
    let metadata = p.metadata.clone().unwrap_or_default();
    check_metadata(&metadata).map_err(StoreError::Invalid)?;
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "INSERT INTO entitlements AS e (id, account_id, name, code, metadata)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &wtx.account_id(),
                &name,
                &code,
                &Value::Object(metadata),
            ],
        )
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique(CODE_TAKEN))?;
    let e = from_row(&row)?;
    wtx.audit(
        "entitlement.create",
        "entitlement",
        Some(e.id.to_string()),
        json!({"code": e.code}),
    );
    Ok(e)
}

pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
) -> StoreResult<Vec<Entitlement>> {
    c.query(
        &format!(
            "SELECT {COLUMNS} FROM entitlements e WHERE e.account_id = $1 ORDER BY e.created_at, e.id"
        ),
        &[&account_id],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

pub async fn get<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id: Uuid,
) -> StoreResult<Entitlement> {
    let row = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM entitlements e WHERE e.id = $1 AND e.account_id = $2"),
            &[&id, &account_id],
        )
        .await?
        .ok_or(StoreError::NotFound("entitlement"))?;
    from_row(&row)
}

pub async fn update(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    p: &EntitlementPatch,
) -> StoreResult<Entitlement> {
    let name = p.name.as_deref().map(check_name).transpose()?;
    let code = p.code.as_deref().map(check_code).transpose()?;
    let metadata = match &p.metadata {
        Some(m) => {
            check_metadata(m).map_err(StoreError::Invalid)?;
            Some(Value::Object(m.clone()))
        }
        None => None,
    };
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE entitlements e SET name = coalesce($3, name), code = coalesce($4, code),
                        metadata = coalesce($5, metadata), updated_at = now()
                  WHERE e.id = $1 AND e.account_id = $2 RETURNING {COLUMNS}"
            ),
            &[&id, &wtx.account_id(), &name, &code, &metadata],
        )
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique(CODE_TAKEN))?
        .ok_or(StoreError::NotFound("entitlement"))?;
    let e = from_row(&row)?;
    invalidate_holders_of(wtx, id).await?;
    wtx.audit(
        "entitlement.update",
        "entitlement",
        Some(id.to_string()),
        json!({"code": e.code}),
    );
    Ok(e)
}

/// Deletes the entitlement; every policy and license loses it.
pub async fn delete(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    // Before the links go with it.
    invalidate_holders_of(wtx, id).await?;
    let row = wtx
        .tx()
        .query_opt(
            "DELETE FROM entitlements WHERE id = $1 AND account_id = $2 RETURNING code",
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("entitlement"))?;
    let code: String = row.try_get(0)?;
    wtx.audit(
        "entitlement.delete",
        "entitlement",
        Some(id.to_string()),
        json!({"code": code}),
    );
    Ok(())
}

/// Validators read a license's entitlement codes (Keygen's entitlements scope): every app with a
/// policy or license holding this one re-reads its licenses.
async fn invalidate_holders_of(wtx: &mut WriteTx<'_>, entitlement: Uuid) -> StoreResult<()> {
    let rows = wtx
        .tx()
        .query(
            "SELECT p.app_id FROM policy_entitlements x JOIN policies p ON p.id = x.policy_id
              WHERE x.entitlement_id = $1 AND x.account_id = $2
             UNION
             SELECT l.app_id FROM license_entitlements x JOIN licenses l ON l.id = x.license_id
              WHERE x.entitlement_id = $1 AND x.account_id = $2",
            &[&entitlement, &wtx.account_id()],
        )
        .await?;
    for row in rows {
        wtx.invalidate(Invalidation::Policy {
            app: row.try_get(0)?,
        });
    }
    Ok(())
}

/// A policy's entitlements reach all its licenses; a license's, that license.
async fn invalidate_holder(wtx: &mut WriteTx<'_>, holder: Holder) -> StoreResult<()> {
    match holder {
        Holder::Policy(id) => {
            let row = wtx
                .tx()
                .query_one("SELECT app_id FROM policies WHERE id = $1", &[&id])
                .await?;
            wtx.invalidate(Invalidation::Policy {
                app: row.try_get(0)?,
            });
        }
        Holder::License(id) => {
            let row = wtx
                .tx()
                .query_one("SELECT app_id, key FROM licenses WHERE id = $1", &[&id])
                .await?;
            wtx.invalidate(Invalidation::License {
                app: row.try_get(0)?,
                key: row.try_get(1)?,
            });
        }
    }
    Ok(())
}

/// What entitlements are attached to: a policy (all its licenses) or one license.
#[derive(Debug, Clone, Copy)]
pub enum Holder {
    Policy(Uuid),
    License(Uuid),
}

impl Holder {
    fn id(self) -> Uuid {
        match self {
            Holder::Policy(id) | Holder::License(id) => id,
        }
    }

    /// (holder table, link table, link column, kind for errors and the audit).
    fn tables(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Holder::Policy(_) => ("policies", "policy_entitlements", "policy_id", "policy"),
            Holder::License(_) => ("licenses", "license_entitlements", "license_id", "license"),
        }
    }

    async fn owned<C: GenericClient + Sync>(self, c: &C, account_id: Uuid) -> StoreResult<()> {
        let (table, _, _, kind) = self.tables();
        c.query_opt(
            &format!("SELECT 1 FROM {table} WHERE id = $1 AND account_id = $2"),
            &[&self.id(), &account_id],
        )
        .await?
        .map(drop)
        .ok_or(StoreError::NotFound(kind))
    }
}

/// The entitlements attached to one of the caller's policies or licenses, oldest first.
pub async fn attached<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    holder: Holder,
) -> StoreResult<Vec<Entitlement>> {
    holder.owned(c, account_id).await?;
    let (_, link, column, _) = holder.tables();
    c.query(
        &format!(
            "SELECT {COLUMNS} FROM {link} x JOIN entitlements e ON e.id = x.entitlement_id
              WHERE x.{column} = $1 AND e.account_id = $2 ORDER BY e.created_at, e.id"
        ),
        &[&holder.id(), &account_id],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Attaches the caller's entitlements `ids` (already attached ones are left as they are).
pub async fn attach(
    wtx: &mut WriteTx<'_>,
    holder: Holder,
    ids: &[Uuid],
) -> StoreResult<Vec<Entitlement>> {
    if ids.is_empty() || ids.len() > MAX_ATTACH {
        return Err(StoreError::Invalid(format!(
            "entitlement_ids must name 1 to {MAX_ATTACH} entitlements"
        )));
    }
    let account = wtx.account_id();
    holder.owned(wtx.tx(), account).await?;
    let (_, link, column, kind) = holder.tables();
    let known: i64 = wtx
        .tx()
        .query_one(
            "SELECT count(*) FROM entitlements WHERE id = ANY($1) AND account_id = $2",
            &[&ids, &account],
        )
        .await?
        .try_get(0)?;
    let mut distinct = ids.to_vec();
    distinct.sort();
    distinct.dedup();
    if known != distinct.len() as i64 {
        return Err(StoreError::NotFound("entitlement"));
    }
    wtx.tx()
        .execute(
            &format!(
                "INSERT INTO {link} ({column}, entitlement_id, account_id)
                 SELECT $1, id, $3 FROM unnest($2::uuid[]) AS id ON CONFLICT DO NOTHING"
            ),
            &[&holder.id(), &distinct, &account],
        )
        .await?;
    invalidate_holder(wtx, holder).await?;
    wtx.audit(
        format!("{kind}.entitlements.attach"),
        kind,
        Some(holder.id().to_string()),
        json!({"entitlement_ids": distinct}),
    );
    attached(wtx.tx(), account, holder).await
}

pub async fn detach(wtx: &mut WriteTx<'_>, holder: Holder, entitlement: Uuid) -> StoreResult<()> {
    let account = wtx.account_id();
    holder.owned(wtx.tx(), account).await?;
    let (_, link, column, kind) = holder.tables();
    let n = wtx
        .tx()
        .execute(
            &format!("DELETE FROM {link} WHERE {column} = $1 AND entitlement_id = $2 AND account_id = $3"),
            &[&holder.id(), &entitlement, &account],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("attached entitlement"));
    }
    invalidate_holder(wtx, holder).await?;
    wtx.audit(
        format!("{kind}.entitlements.detach"),
        kind,
        Some(holder.id().to_string()),
        json!({"entitlement_id": entitlement}),
    );
    Ok(())
}
