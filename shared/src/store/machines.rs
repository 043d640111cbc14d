//! Machines' SQL: the devices a license is activated on (the validators bind them on first use;
//! admins and SDKs activate, describe and deactivate them here). A machine belongs to the tenant
//! of its license, so every statement joins the license for the account.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::model::{check_metadata, present, Machine};
use crate::write::WriteTx;

/// The longest fingerprint a validator accepts as a HWID.
pub const MAX_FINGERPRINT_LEN: usize = 256;
const MAX_TEXT_LEN: usize = 255;

pub(super) const COLUMNS: &str = "m.id, m.license_id, l.app_id, m.fingerprint, m.name, m.hostname,
    m.platform, m.ip, m.cores, m.memory, m.disk, m.metadata, m.bound_by, m.last_heartbeat_at,
    m.last_check_out_at, m.bound_at, m.updated_at";

pub(super) fn from_row(r: &Row) -> StoreResult<Machine> {
    Ok(Machine {
        id: r.try_get("id")?,
        license_id: r.try_get("license_id")?,
        app_id: r.try_get("app_id")?,
        fingerprint: r.try_get("fingerprint")?,
        name: r.try_get("name")?,
        hostname: r.try_get("hostname")?,
        platform: r.try_get("platform")?,
        ip: r.try_get("ip")?,
        cores: r.try_get("cores")?,
        memory: r.try_get("memory")?,
        disk: r.try_get("disk")?,
        metadata: match r.try_get::<_, Value>("metadata")? {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        bound_by: r.try_get("bound_by")?,
        last_heartbeat_at: r.try_get("last_heartbeat_at")?,
        last_check_out_at: r.try_get("last_check_out_at")?,
        created_at: r.try_get("bound_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// What describes a machine besides its fingerprint; on update, absent fields keep their
/// value and `null` clears one.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachinePatch {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub hostname: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub platform: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub ip: Option<Option<IpAddr>>,
    #[serde(default, deserialize_with = "present")]
    pub cores: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    pub memory: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub disk: Option<Option<i64>>,
    pub metadata: Option<Map<String, Value>>,
}

/// An activation: the fingerprint and, beside it, the description (`MachinePatch`'s fields; an
/// unknown field is refused, which serde's `flatten` would not do).
#[derive(Debug, Clone)]
pub struct NewMachine {
    pub fingerprint: String,
    pub details: MachinePatch,
}

impl<'de> Deserialize<'de> for NewMachine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = Map::<String, Value>::deserialize(d)?;
        let fingerprint = match fields.remove("fingerprint") {
            Some(Value::String(f)) => f,
            Some(_) => return Err(D::Error::custom("fingerprint must be a string")),
            None => return Err(D::Error::missing_field("fingerprint")),
        };
        let details = MachinePatch::deserialize(Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(NewMachine {
            fingerprint,
            details,
        })
    }
}

fn check_fingerprint(f: &str) -> StoreResult<()> {
    if f.is_empty() || f.len() > MAX_FINGERPRINT_LEN {
        return Err(StoreError::Invalid(format!(
            "fingerprint must be 1 to {MAX_FINGERPRINT_LEN} characters"
        )));
    }
    Ok(())
}

impl MachinePatch {
    /// Applies the patch to `m`, checking every field it sets.
    fn apply(&self, m: &mut Machine) -> StoreResult<()> {
        let invalid = |msg: String| StoreError::Invalid(msg);
        for (field, value, target) in [
            ("name", &self.name, &mut m.name),
            ("hostname", &self.hostname, &mut m.hostname),
            ("platform", &self.platform, &mut m.platform),
        ] {
            if let Some(v) = value {
                if v.as_ref().is_some_and(|s| s.chars().count() > MAX_TEXT_LEN) {
                    return Err(invalid(format!(
                        "{field} must be at most {MAX_TEXT_LEN} characters"
                    )));
                }
                *target = v.clone();
            }
        }
        if let Some(ip) = self.ip {
            m.ip = ip;
        }
        if let Some(cores) = self.cores {
            if cores.is_some_and(|c| c < 1) {
                return Err(invalid("cores must be at least 1, or null".into()));
            }
            m.cores = cores;
        }
        for (field, value, target) in [
            ("memory", self.memory, &mut m.memory),
            ("disk", self.disk, &mut m.disk),
        ] {
            if let Some(v) = value {
                if v.is_some_and(|b| b < 1) {
                    return Err(invalid(format!("{field} must be at least 1 byte, or null")));
                }
                *target = v;
            }
        }
        if let Some(meta) = &self.metadata {
            check_metadata(meta).map_err(invalid)?;
            m.metadata = meta.clone();
        }
        Ok(())
    }
}

/// The machines of one of the caller's licenses, in activation order.
pub async fn list_for_license<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    license_id: Uuid,
) -> StoreResult<Vec<Machine>> {
    // Another tenant's license is "not found", not an empty list.
    c.query_opt(
        "SELECT 1 FROM licenses WHERE id = $1 AND account_id = $2",
        &[&license_id, &account_id],
    )
    .await?
    .ok_or(StoreError::NotFound("license"))?;
    c.query(
        &format!(
            "SELECT {COLUMNS} FROM machines m JOIN licenses l ON l.id = m.license_id
             WHERE m.license_id = $1 AND l.account_id = $2 ORDER BY m.bound_at, m.fingerprint"
        ),
        &[&license_id, &account_id],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Which of an account's machines a list shows.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub app: Option<Uuid>,
    pub license: Option<Uuid>,
    pub fingerprint: Option<String>,
    /// Machines of licenses this user owns.
    pub owner: Option<Uuid>,
}

/// A page of the account's machines, newest first, with the total that match.
pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    f: &Filter,
    page: super::Offset,
) -> StoreResult<(Vec<Machine>, i64)> {
    let filter = "l.account_id = $1 AND ($2::uuid IS NULL OR l.app_id = $2)
        AND ($3::uuid IS NULL OR m.license_id = $3) AND ($4::text IS NULL OR m.fingerprint = $4)
        AND ($5::uuid IS NULL OR l.owner_id = $5)";
    let total: i64 = c
        .query_one(
            &format!(
                "SELECT count(*) FROM machines m JOIN licenses l ON l.id = m.license_id WHERE {filter}"
            ),
            &[&account_id, &f.app, &f.license, &f.fingerprint, &f.owner],
        )
        .await?
        .try_get(0)?;
    let items = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM machines m JOIN licenses l ON l.id = m.license_id WHERE {filter}
                 ORDER BY m.bound_at DESC, m.id DESC LIMIT $6 OFFSET $7"
            ),
            &[&account_id, &f.app, &f.license, &f.fingerprint, &f.owner, &page.limit, &page.offset],
        )
        .await?
        .iter()
        .map(from_row)
        .collect::<StoreResult<Vec<Machine>>>()?;
    Ok((items, total))
}

/// Which of the account's machines `page` lists (`GET /v1/machines`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub app_id: Option<Uuid>,
    pub license_id: Option<Uuid>,
    /// Substring of the fingerprint, name, hostname or license key (case-insensitive).
    pub search: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// A machine with the key of its license, as the machines list shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub machine: Machine,
    pub license_key: String,
}

/// A page of the account's machines, newest activation first, keyset-paginated.
pub async fn page<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    q: &PageQuery,
) -> StoreResult<(Vec<Listed>, Option<String>)> {
    let limit = super::page_size(q.limit, 50, 200);
    let (after_at, after_id) = q
        .cursor
        .as_deref()
        .map(super::decode_cursor)
        .transpose()?
        .unzip();
    let search = q
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(super::contains_pattern);
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS}, l.key AS license_key FROM machines m JOIN licenses l ON l.id = m.license_id
                  WHERE l.account_id = $1 AND ($2::uuid IS NULL OR l.app_id = $2)
                    AND ($3::uuid IS NULL OR m.license_id = $3)
                    AND ($4::text IS NULL OR m.fingerprint ILIKE $4 OR m.name ILIKE $4
                         OR m.hostname ILIKE $4 OR l.key ILIKE $4)
                    AND ($5::timestamptz IS NULL OR (m.bound_at, m.id) < ($5, $6::uuid))
                  ORDER BY m.bound_at DESC, m.id DESC LIMIT $7"
            ),
            &[&account_id, &q.app_id, &q.license_id, &search, &after_at, &after_id, &(limit + 1)],
        )
        .await?;
    let mut items = rows
        .iter()
        .map(|r| {
            Ok(Listed {
                machine: from_row(r)?,
                license_key: r.try_get("license_key")?,
            })
        })
        .collect::<StoreResult<Vec<Listed>>>()?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|l| super::encode_cursor(l.machine.created_at, l.machine.id))
    } else {
        None
    };
    Ok((items, next))
}

pub async fn get<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id: Uuid,
) -> StoreResult<Machine> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM machines m JOIN licenses l ON l.id = m.license_id
                 WHERE m.id = $1 AND l.account_id = $2"
            ),
            &[&id, &account_id],
        )
        .await?
        .ok_or(StoreError::NotFound("machine"))?;
    from_row(&row)
}

/// Refuses a fingerprint already activated within the policy's uniqueness scope beyond the
/// license (its policy, its product, the account). Concurrent activations of one fingerprint on
/// different licenses hold different license locks, so the scope and fingerprint are locked too
/// (a transaction-level advisory lock) before the check.
async fn taken_in_scope(
    wtx: &WriteTx<'_>,
    uniqueness: crate::policy::MachineUniqueness,
    app_id: Uuid,
    policy_id: Uuid,
    fingerprint: &str,
) -> StoreResult<()> {
    use crate::policy::MachineUniqueness as U;
    let account = wtx.account_id();
    let (scope, condition, id, what) = match uniqueness {
        U::PerLicense => return Ok(()),
        U::PerPolicy => ("policy", "l.policy_id = $2", policy_id, "policy"),
        U::PerProduct => ("product", "l.app_id = $2", app_id, "product"),
        U::PerAccount => ("account", "l.account_id = $2", account, "account"),
    };
    wtx.tx()
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&format!("machine:{scope}:{id}:{fingerprint}")],
        )
        .await?;
    let taken: bool = wtx
        .tx()
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM machines m JOIN licenses l ON l.id = m.license_id
                                 WHERE m.fingerprint = $1 AND {condition})"
            ),
            &[&fingerprint, &id],
        )
        .await?
        .try_get(0)?;
    if taken {
        return Err(StoreError::Conflict(format!(
            "this fingerprint is already activated in this {what}"
        )));
    }
    Ok(())
}

/// Activates `fingerprint` on one of the caller's licenses, within the license's machine limit:
/// the license row is locked first, so concurrent activations (here and first uses on the
/// validators) are counted one after the other and never exceed it.
pub async fn activate(
    wtx: &mut WriteTx<'_>,
    license_id: Uuid,
    new: &NewMachine,
) -> StoreResult<Machine> {
    check_fingerprint(&new.fingerprint)?;
    let mut machine = Machine {
        id: Uuid::new_v4(),
        license_id,
        app_id: Uuid::nil(),
        fingerprint: new.fingerprint.clone(),
        name: None,
        hostname: None,
        platform: None,
        ip: None,
        cores: None,
        memory: None,
        disk: None,
        metadata: Map::new(),
        bound_by: "api".into(),
        last_heartbeat_at: None,
        last_check_out_at: None,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    };
    new.details.apply(&mut machine)?;
    let license = wtx
        .tx()
        .query_opt(
            concat!(
                "SELECT l.app_id, l.key, l.policy_id, p.machine_uniqueness_strategy, ",
                limits!(),
                " FROM licenses l JOIN policies p ON p.id = l.policy_id
                  WHERE l.id = $1 AND l.account_id = $2 FOR UPDATE OF l"
            ),
            &[&license_id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("license"))?;
    let app_id: Uuid = license.try_get("app_id")?;
    let key: String = license.try_get("key")?;
    let limit: i32 = license.try_get("hwid_limit")?;
    let policy_id: Uuid = license.try_get("policy_id")?;
    let uniqueness: crate::policy::MachineUniqueness =
        license.try_get("machine_uniqueness_strategy")?;
    taken_in_scope(wtx, uniqueness, app_id, policy_id, &new.fingerprint).await?;
    // Both in one read, under the license's lock.
    let counted = wtx
        .tx()
        .query_one(
            "SELECT count(*), coalesce(bool_or(fingerprint = $2), false) FROM machines WHERE license_id = $1",
            &[&license_id, &new.fingerprint],
        )
        .await?;
    let bound: i64 = counted.try_get(0)?;
    let taken: bool = counted.try_get(1)?;
    if taken {
        return Err(StoreError::Conflict(
            "this fingerprint is already activated on this license".into(),
        ));
    }
    if limit > 0 && bound >= i64::from(limit) {
        return Err(StoreError::LimitReached(format!(
            "machine limit reached: this license allows {limit} machine(s)"
        )));
    }
    let metadata = Value::Object(machine.metadata.clone());
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "WITH m AS (
                   INSERT INTO machines (id, license_id, fingerprint, bound_by, name, hostname,
                                         platform, ip, cores, memory, disk, metadata)
                   VALUES ($1, $2, $3, 'api', $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *)
                 SELECT {COLUMNS} FROM m JOIN licenses l ON l.id = m.license_id"
            ),
            &[
                &machine.id,
                &license_id,
                &machine.fingerprint,
                &machine.name,
                &machine.hostname,
                &machine.platform,
                &machine.ip,
                &machine.cores,
                &machine.memory,
                &machine.disk,
                &metadata,
            ],
        )
        .await?;
    let machine = from_row(&row)?;
    wtx.invalidate(Invalidation::License { app: app_id, key });
    wtx.audit(
        "machine.activate",
        "machine",
        Some(machine.id.to_string()),
        json!({"license_id": license_id, "fingerprint": machine.fingerprint}),
    );
    Ok(machine)
}

/// Changes a machine's description (not its fingerprint: that is a new activation).
pub async fn update(wtx: &mut WriteTx<'_>, id: Uuid, patch: &MachinePatch) -> StoreResult<Machine> {
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM machines m JOIN licenses l ON l.id = m.license_id
                 WHERE m.id = $1 AND l.account_id = $2 FOR UPDATE OF m"
            ),
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("machine"))?;
    let mut machine = from_row(&row)?;
    patch.apply(&mut machine)?;
    let metadata = Value::Object(machine.metadata.clone());
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "WITH m AS (
                   UPDATE machines SET name = $2, hostname = $3, platform = $4, ip = $5,
                          cores = $6, memory = $7, disk = $8, metadata = $9, updated_at = now()
                    WHERE id = $1 RETURNING *)
                 SELECT {COLUMNS} FROM m JOIN licenses l ON l.id = m.license_id"
            ),
            &[
                &id,
                &machine.name,
                &machine.hostname,
                &machine.platform,
                &machine.ip,
                &machine.cores,
                &machine.memory,
                &machine.disk,
                &metadata,
            ],
        )
        .await?;
    let updated = from_row(&row)?;
    wtx.audit(
        "machine.update",
        "machine",
        Some(id.to_string()),
        json!({"license_id": updated.license_id}),
    );
    Ok(updated)
}

/// Deactivates a machine: its slot is free, and the validators forget the license's bindings.
pub async fn deactivate(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "DELETE FROM machines m USING licenses l
              WHERE m.id = $1 AND l.id = m.license_id AND l.account_id = $2
              RETURNING l.id, l.app_id, l.key, m.fingerprint",
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("machine"))?;
    let license_id: Uuid = row.try_get(0)?;
    let app: Uuid = row.try_get(1)?;
    let key: String = row.try_get(2)?;
    let fingerprint: String = row.try_get(3)?;
    wtx.invalidate(Invalidation::License { app, key });
    wtx.audit(
        "machine.deactivate",
        "machine",
        Some(id.to_string()),
        json!({"license_id": license_id, "fingerprint": fingerprint}),
    );
    Ok(())
}

/// Records a heartbeat (`Some(now)`) or clears it (`None`, Keygen's heartbeat reset) on one of
/// the caller's machines.
pub async fn heartbeat(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> StoreResult<Machine> {
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "WITH m AS (
                   UPDATE machines m SET last_heartbeat_at = $3, updated_at = now()
                     FROM licenses l
                    WHERE m.id = $1 AND l.id = m.license_id AND l.account_id = $2
                   RETURNING m.*)
                 SELECT {COLUMNS}, l.key FROM m JOIN licenses l ON l.id = m.license_id"
            ),
            &[&id, &wtx.account_id(), &at],
        )
        .await?
        .ok_or(StoreError::NotFound("machine"))?;
    let machine = from_row(&row)?;
    let key: String = row.try_get("key")?;
    wtx.invalidate(Invalidation::License {
        app: machine.app_id,
        key,
    });
    Ok(machine)
}

/// Deactivates machines whose heartbeat died under a `DEACTIVATE_DEAD` policy, past their
/// revival window and Keygen's grace (`verdict::keygen::cull_at`), at most `limit` per call, so
/// their slots are free again. Each account's deactivations are one audited, invalidating write.
/// Returns how many were deactivated.
pub async fn cull_dead(
    client: &mut tokio_postgres::Client,
    now: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> StoreResult<usize> {
    use crate::verdict::keygen::{cull_at, KeygenMachine, CULL_GRACE_SECS};
    // A superset of the dead (the earliest any could be culled); `cull_at` decides.
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS}, l.account_id, l.policy_id FROM machines m
                   JOIN licenses l ON l.id = m.license_id
                   JOIN policies p ON p.id = l.policy_id
                  WHERE p.heartbeat_cull_strategy = 'deactivate_dead'
                    AND p.heartbeat_resurrection_strategy <> 'always_revive'
                    AND (m.last_heartbeat_at IS NOT NULL OR p.require_heartbeat)
                    AND coalesce(m.last_heartbeat_at, m.bound_at)
                        + make_interval(secs => p.heartbeat_duration_secs + $2::int4) < $1
                  ORDER BY l.account_id LIMIT $3"
            ),
            &[&now, &(CULL_GRACE_SECS as i32), &limit],
        )
        .await?;
    let mut policies = std::collections::HashMap::new();
    let mut due: std::collections::BTreeMap<Uuid, Vec<Uuid>> = Default::default();
    for row in &rows {
        let machine = from_row(row)?;
        let account: Uuid = row.try_get("account_id")?;
        let policy_id: Uuid = row.try_get("policy_id")?;
        if let std::collections::hash_map::Entry::Vacant(slot) = policies.entry(policy_id) {
            slot.insert(super::policies::get(&*client, account, policy_id).await?);
        }
        let Some(policy) = policies.get(&policy_id) else {
            continue;
        };
        if cull_at(&KeygenMachine::from_machine(&machine), policy).is_some_and(|at| at < now) {
            due.entry(account).or_default().push(machine.id);
        }
    }
    let mut culled = 0;
    for (account, machines) in due {
        let actor = crate::write::Actor {
            origin: Default::default(),
            account_id: account,
            label: "janitor:heartbeat-cull".into(),
        };
        let mut w = WriteTx::begin(client, actor).await?;
        for id in machines {
            match deactivate(&mut w, id).await {
                Ok(()) => culled += 1,
                // Deactivated meanwhile by someone else.
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        w.commit().await?;
    }
    Ok(culled)
}
