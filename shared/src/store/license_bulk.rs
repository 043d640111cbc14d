//! One action on many of the caller's licenses at once (the admin UI's selected rows), inside the
//! caller's transaction: every license changes or none does. Each license goes through the same
//! store function as its single-license endpoint, so it is invalidated and audited the same way.

use std::collections::HashMap;

use serde::Deserialize;
use uuid::Uuid;

use super::licenses::{self, Extension};
use crate::error::{StoreError, StoreResult};
use crate::write::WriteTx;

/// The most licenses one request may name (two pages of the UI's table).
pub const MAX_IDS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    Ban,
    Unban,
    /// By `days`.
    Extend,
    ResetHwids,
    Delete,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// 1 to 100 of the caller's licenses (repeats count once).
    pub ids: Vec<Uuid>,
    pub action: BulkAction,
    /// With `ban`: the reason shown to clients.
    pub reason: Option<String>,
    /// With `extend`: the days to add (1 to 999999).
    pub days: Option<i64>,
}

impl BulkRequest {
    /// The distinct ids, in the order given, after checking the request's shape.
    pub fn checked_ids(&self) -> StoreResult<Vec<Uuid>> {
        let invalid = |m: &str| Err(StoreError::Invalid(m.to_string()));
        let mut ids = self.ids.clone();
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        if ids.is_empty() || ids.len() > MAX_IDS {
            return invalid("ids must name 1 to 100 licenses");
        }
        match self.action {
            BulkAction::Extend if !self.days.is_some_and(|d| (1..=999_999).contains(&d)) => {
                return invalid("extend needs days between 1 and 999999")
            }
            BulkAction::Extend => {}
            _ if self.days.is_some() => return invalid("days goes with action extend"),
            _ => {}
        }
        if self.reason.is_some() && self.action != BulkAction::Ban {
            return invalid("reason goes with action ban");
        }
        Ok(ids)
    }
}

/// Applies `req.action` to each of `ids` (from [`BulkRequest::checked_ids`]). A license that is
/// not the caller's fails the whole request as "not found"; a refusal of one license (a revoked
/// one unbanned, one that never expires extended, ...) fails it naming that license's key.
pub async fn apply(wtx: &mut WriteTx<'_>, ids: &[Uuid], req: &BulkRequest) -> StoreResult<()> {
    let keys: HashMap<Uuid, String> = wtx
        .tx()
        .query(
            "SELECT id, key FROM licenses WHERE id = ANY($1) AND account_id = $2",
            &[&ids, &wtx.account_id()],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<StoreResult<_>>()?;
    if keys.len() != ids.len() {
        return Err(StoreError::NotFound("license"));
    }
    let extension = Extension {
        days: req.days,
        seconds: None,
    };
    for id in ids {
        let done = match req.action {
            BulkAction::Ban => licenses::ban(wtx, *id, req.reason.as_deref()).await,
            BulkAction::Unban => licenses::unban(wtx, *id).await,
            BulkAction::Extend => licenses::extend(wtx, *id, &extension).await,
            BulkAction::ResetHwids => licenses::reset_hwids(wtx, *id).await,
            BulkAction::Delete => licenses::delete(wtx, *id).await,
        };
        let key = keys.get(id).map_or("?", String::as_str);
        done.map_err(|e| match e {
            StoreError::Invalid(m) => StoreError::Invalid(format!("license {key}: {m}")),
            StoreError::Conflict(m) => StoreError::Conflict(format!("license {key}: {m}")),
            other => other,
        })?;
    }
    Ok(())
}
