//! The one write path: every write that can change a validator's answer goes through [`WriteTx`],
//! which commits the change, its audit rows and its `pg_notify` invalidations in one transaction.
//!
//! Store functions that write take `&mut WriteTx`, so there is no way to write those tables
//! without also invalidating.

use serde_json::Value;
use tokio_postgres::{Client, Transaction};
use uuid::Uuid;

use crate::error::StoreResult;
use crate::invalidation::{self, Invalidation};

/// Who is writing, for the audit log and tenant scoping.
#[derive(Debug, Clone)]
pub struct Actor {
    pub account_id: Uuid,
    /// e.g. `admin:alice`, `api_key:kw_AbCd`, `validator`.
    pub label: String,
}

struct PendingAudit {
    action: String,
    target_type: &'static str,
    target_id: Option<String>,
    details: Value,
}

pub struct WriteTx<'a> {
    tx: Transaction<'a>,
    actor: Actor,
    invalidations: Vec<Invalidation>,
    audits: Vec<PendingAudit>,
}

impl<'a> WriteTx<'a> {
    pub async fn begin(client: &'a mut Client, actor: Actor) -> StoreResult<WriteTx<'a>> {
        Ok(WriteTx {
            tx: client.transaction().await?,
            actor,
            invalidations: Vec::new(),
            audits: Vec::new(),
        })
    }

    /// The transaction, for the statements of the write itself.
    pub fn tx(&self) -> &Transaction<'a> {
        &self.tx
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    pub fn account_id(&self) -> Uuid {
        self.actor.account_id
    }

    pub fn invalidate(&mut self, inv: Invalidation) {
        if !self.invalidations.contains(&inv) {
            self.invalidations.push(inv);
        }
    }

    pub fn audit(
        &mut self,
        action: impl Into<String>,
        target_type: &'static str,
        target_id: Option<String>,
        details: Value,
    ) {
        self.audits.push(PendingAudit {
            action: action.into(),
            target_type,
            target_id,
            details,
        });
    }

    /// Writes the audit rows, bumps the cache generation and notifies, then commits. Nothing is
    /// delivered to listeners unless the commit succeeds.
    pub async fn commit(self) -> StoreResult<()> {
        let WriteTx {
            tx,
            actor,
            invalidations,
            audits,
        } = self;
        for a in &audits {
            tx.execute(
                "INSERT INTO audit_log (account_id, actor, action, target_type, target_id, details)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &actor.account_id,
                    &actor.label,
                    &a.action,
                    &a.target_type,
                    &a.target_id,
                    &a.details,
                ],
            )
            .await?;
        }
        if !invalidations.is_empty() {
            // One statement, the last before the commit: the generation row's lock serialises
            // generations in commit order, so every invalidating write waits for it, and it is
            // held from here to the end of the commit. Taking the generation and notifying in
            // separate statements held it across one more client round trip per notification (a
            // burst of first uses commits one at a time behind it).
            tx.execute(
                "WITH g AS (UPDATE cache_epoch SET generation = generation + 1 RETURNING generation)
                 SELECT pg_notify($1, '{\"g\":' || g.generation || ',\"i\":' || items || '}')
                   FROM g, unnest($2::text[]) AS items",
                &[
                    &invalidation::CHANNEL,
                    &invalidation::encode_items(&invalidations),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
