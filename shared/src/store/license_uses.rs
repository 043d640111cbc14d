//! CyberLicense validation's one conditional write: a new IP/HWID appended within the limits and
//! a consumption credit spent, all or nothing, under the license row's lock.
//!
//! The validator decides from its cache whether a write is needed
//! ([`crate::verdict::cyberlicense::decide`]); [`record`] then locks the license row and
//! re-checks, on committed data, the IP limit, the HWID limit and the credits (in that order, the
//! rules' own), so concurrent validations on any number of validators never exceed a limit or
//! spend more credits than the license has. A refusal writes nothing.
//!
//! A credit-spending validation may carry a nonce (the body's `nonce` or `Idempotency-Key`):
//! seen again within [`NONCE_WINDOW_SECS`], the request is a client's retry and is answered
//! valid again without spending or appending anything.

use std::net::IpAddr;

use serde_json::{json, Value};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use super::licenses::{from_row, SELECT};
use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::model::{License, LicenseStatus};
use crate::verdict::cyberlicense::{at_limit, Refusal, Use};
use crate::write::WriteTx;

/// How long a spend's nonce answers a retry (and is kept), in seconds.
pub const NONCE_WINDOW_SECS: f64 = 600.0;

/// The longest nonce (the column's check).
pub const MAX_NONCE_LEN: usize = 200;

/// How [`record`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Everything asked was written (or was there already): the license is valid.
    Written,
    /// The nonce was seen within the window: valid again, nothing written.
    Replayed,
    /// The re-check under the lock refused (another request took the last slot or credit, or
    /// the license changed state meanwhile); nothing was written.
    Refused(Refusal),
}

/// The license as committed after [`record`], and what happened.
#[derive(Debug)]
pub struct Used {
    pub license: License,
    pub outcome: Recorded,
    /// An IP or HWID was appended or the first use recorded, and validators were told to drop
    /// the license. A spend alone tells nobody: a stale cached `uses` only makes a validator
    /// try the write, whose re-check answers right.
    pub changed: bool,
}

/// What a written use changed, for the invalidation and the audit.
struct Change {
    before: Value,
    after: Value,
    first_use: bool,
}

enum Step {
    Written(Option<Change>),
    Replayed,
    Refused(Refusal),
}

/// Performs `write` on the license `license_id` of the writer's account: appends its new IP and
/// HWID, spends a credit, records the first use, all or nothing. `nonce` is only read for a
/// spend. `None` when the license no longer exists.
pub async fn record(
    wtx: &mut WriteTx<'_>,
    license_id: Uuid,
    write: &Use,
    nonce: Option<&str>,
) -> StoreResult<Option<Used>> {
    let nonce = nonce.filter(|_| write.spend);
    if nonce.is_some_and(|n| n.is_empty() || n.len() > MAX_NONCE_LEN || n.contains('\0')) {
        return Err(StoreError::Invalid(format!(
            "a nonce must be 1 to {MAX_NONCE_LEN} characters, without NUL"
        )));
    }
    // Statement 1 takes the lock (FOR UPDATE reads the row's newest version); the next
    // statements run on new snapshots that see every IP and HWID committed before we got it.
    let Some(locked) = wtx
        .tx()
        .query_opt(
            concat!(
                "SELECT l.app_id, l.key, l.status, l.used_at IS NOT NULL AS used, l.uses,
                        coalesce(l.max_uses, p.max_uses, 0) AS max_uses,
                        coalesce(l.one_time_use, p.one_time_use) AS one_time_use, ",
                limits!(),
                " FROM licenses l JOIN policies p ON p.id = l.policy_id
                 WHERE l.id = $1 AND l.account_id = $2 FOR UPDATE OF l"
            ),
            &[&license_id, &wtx.account_id()],
        )
        .await?
    else {
        return Ok(None);
    };
    let app: Uuid = locked.try_get("app_id")?;
    let key: String = locked.try_get("key")?;
    let status: LicenseStatus = locked.try_get("status")?;
    let used: bool = locked.try_get("used")?;
    let step = if let Some(refusal) = Refusal::of_status(status) {
        Step::Refused(refusal)
    } else if write.first_use && used && locked.try_get::<_, bool>("one_time_use")? {
        // Another validation spent this one-time key first.
        Step::Refused(Refusal::Expired)
    } else {
        check_and_write(wtx, license_id, write, nonce, &locked).await?
    };
    let (outcome, changed) = match step {
        Step::Written(change) => (Recorded::Written, change),
        Step::Replayed => (Recorded::Replayed, None),
        Step::Refused(r) => (Recorded::Refused(r), None),
    };
    let did_change = changed.is_some();
    if let Some(c) = changed {
        wtx.invalidate(Invalidation::License {
            app,
            key: key.clone(),
        });
        wtx.audit(
            "license.use",
            "license",
            Some(license_id.to_string()),
            json!({"key": key, "before": c.before, "after": c.after, "first_use": c.first_use}),
        );
    }
    let fresh = wtx
        .tx()
        .query_opt(&format!("{SELECT} WHERE l.id = $1"), &[&license_id])
        .await?
        .map(|r| from_row(&r));
    Ok(fresh.map(|license| Used {
        license,
        outcome,
        changed: did_change,
    }))
}

/// Under the lock: the nonce, then the IP limit, the HWID limit and the credits on committed
/// rows; then every write, or none.
async fn check_and_write(
    wtx: &mut WriteTx<'_>,
    license_id: Uuid,
    write: &Use,
    nonce: Option<&str>,
    locked: &Row,
) -> StoreResult<Step> {
    let first_use = !locked.try_get::<_, bool>("used")?;
    if nonce.is_some() {
        // Forgotten past the window (the janitor also prunes those of licenses spent no more).
        wtx.tx()
            .execute(
                "DELETE FROM license_spends
                  WHERE license_id = $1 AND created_at <= now() - make_interval(secs => $2)",
                &[&license_id, &NONCE_WINDOW_SECS],
            )
            .await?;
    }
    // A spend of a known client (the hot write of consumption licenses) needs none of this.
    let needs_rows =
        write.append_ip.is_some() || write.append_hwid.is_some() || nonce.is_some() || first_use;
    let (ips, hwids) = if needs_rows {
        let current = wtx
            .tx()
            .query_one(
                "SELECT ARRAY(SELECT i.ip FROM license_ips i WHERE i.license_id = $1
                               ORDER BY i.first_seen, i.ip) AS ips,
                        ARRAY(SELECT h.fingerprint FROM machines h WHERE h.license_id = $1
                               ORDER BY h.bound_at, h.fingerprint) AS hwids,
                        EXISTS (SELECT 1 FROM license_spends s
                                 WHERE s.license_id = $1 AND s.nonce = $2
                                   AND s.created_at > now() - make_interval(secs => $3)) AS replayed",
                &[&license_id, &nonce, &NONCE_WINDOW_SECS],
            )
            .await?;
        if current.try_get::<_, bool>("replayed")? {
            return Ok(Step::Replayed);
        }
        let ips: Vec<IpAddr> = current.try_get("ips")?;
        let hwids: Vec<String> = current.try_get("hwids")?;
        (ips, hwids)
    } else {
        (Vec::new(), Vec::new())
    };
    let new_ip = write.append_ip.filter(|ip| !ips.contains(ip));
    if new_ip.is_some() && at_limit(ips.len(), locked.try_get("ip_limit")?) {
        return Ok(Step::Refused(Refusal::IpLimit));
    }
    let new_hwid = write
        .append_hwid
        .as_deref()
        .filter(|h| !hwids.iter().any(|b| b == h));
    if new_hwid.is_some() && at_limit(hwids.len(), locked.try_get("hwid_limit")?) {
        return Ok(Step::Refused(Refusal::HwidLimit));
    }
    let uses: i32 = locked.try_get("uses")?;
    let max_uses: i32 = locked.try_get("max_uses")?;
    if write.spend && uses >= max_uses {
        return Ok(Step::Refused(Refusal::NoCredits));
    }

    let tx = wtx.tx();
    if let Some(ip) = new_ip {
        tx.execute(
            "INSERT INTO license_ips (license_id, ip) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&license_id, &ip],
        )
        .await?;
    }
    if let Some(hwid) = new_hwid {
        tx.execute(
            "INSERT INTO machines (license_id, fingerprint, bound_by) VALUES ($1, $2, 'validate')
             ON CONFLICT DO NOTHING",
            &[&license_id, &hwid],
        )
        .await?;
    }
    if write.spend || first_use {
        // The first use also starts an expiry counted from it (as the native activation does).
        tx.execute(
            "UPDATE licenses SET uses = uses + $2::int, used_at = coalesce(used_at, now()),
                    expires_at = CASE WHEN used_at IS NULL AND duration_secs IS NOT NULL
                                       AND (expires_at IS NULL OR restart_expiry_on_first_use)
                                      THEN now() + make_interval(secs => duration_secs)
                                      ELSE expires_at END
              WHERE id = $1",
            &[&license_id, &i32::from(write.spend)],
        )
        .await?;
    }
    if let Some(nonce) = nonce {
        tx.execute(
            "INSERT INTO license_spends (license_id, nonce) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&license_id, &nonce],
        )
        .await?;
    }
    if new_ip.is_none() && new_hwid.is_none() && !first_use {
        return Ok(Step::Written(None));
    }
    let arrays = |ips: &[IpAddr], hwids: &[String]| {
        json!({
            "usedIps": ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "usedHwids": hwids,
        })
    };
    let before = arrays(&ips, &hwids);
    let mut ips = ips;
    let mut hwids = hwids;
    ips.extend(new_ip);
    hwids.extend(new_hwid.map(str::to_string));
    Ok(Step::Written(Some(Change {
        before,
        after: arrays(&ips, &hwids),
        first_use,
    })))
}

/// The hot write of a consumption license: one credit spent for a client it already knows (no
/// IP or HWID to append, not its first use, no nonce), as one prepared statement committed on
/// its own, so the row's lock is held for that statement alone rather than across a
/// transaction's round trips. Like a spend in [`record`] it tells no validator (none decides on
/// a cached `uses`: a stale one only makes it try this write, which re-checks here) and is not
/// audited. `false`: nothing was spent — no credit left, or the license is no longer active —
/// and [`record`] gives the reason.
pub async fn spend<C: crate::db::Hot>(
    c: &C,
    account_id: Uuid,
    license_id: Uuid,
) -> StoreResult<bool> {
    const SQL: &str = "UPDATE licenses l SET uses = l.uses + 1
          FROM policies p
         WHERE l.id = $1 AND l.account_id = $2 AND p.id = l.policy_id
           AND l.status = 'active' AND l.used_at IS NOT NULL
           AND l.uses < coalesce(l.max_uses, p.max_uses, 0)";
    let stmt = c.statement(SQL).await?;
    Ok(c.client()
        .execute(&stmt, &[&license_id, &account_id])
        .await?
        == 1)
}

/// Whether `nonce` spent a credit of the license within the window: a retry of a validation
/// that spent the last credit is answered valid again rather than "expired".
pub async fn replayed<C: GenericClient + Sync>(
    c: &C,
    license_id: Uuid,
    nonce: &str,
) -> StoreResult<bool> {
    if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN || nonce.contains('\0') {
        return Ok(false);
    }
    Ok(c.query_one(
        "SELECT EXISTS (SELECT 1 FROM license_spends
                         WHERE license_id = $1 AND nonce = $2
                           AND created_at > now() - make_interval(secs => $3))",
        &[&license_id, &nonce, &NONCE_WINDOW_SECS],
    )
    .await?
    .try_get(0)?)
}
