//! Validations per app, UTC minute and outcome (migration 0016): what the Overview's chart
//! draws. The validators aggregate their verdicts in memory and write them behind, one upsert
//! per batch; the control-plane reads an account's recent minutes, zero-filled, and its janitor
//! prunes them past the usage retention. The table has no foreign keys, so a flush never locks
//! an app or license row; an app's rows go with it (a trigger).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};

/// The longest series one read returns: a day of minutes.
pub const MAX_MINUTES: i64 = 1440;
/// The width of a bucket.
pub const STEP_SECS: i64 = 60;

/// Rows per prune statement, and statements per prune at most (the rest waits for the next run).
const PRUNE_ROWS: i64 = 5_000;
const PRUNE_ROUNDS: usize = 200;

/// Validations of one app in one minute with one outcome, as a validator buffered them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub account_id: Uuid,
    pub app_id: Uuid,
    /// Truncated to the minute by [`record`].
    pub minute: DateTime<Utc>,
    /// A verdict code in snake_case (`valid`, `banned`, …).
    pub outcome: String,
    pub n: i64,
}

/// The start of `t`'s minute.
pub fn minute_of(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp().div_euclid(STEP_SECS) * STEP_SECS;
    DateTime::from_timestamp(secs, 0).unwrap_or(t)
}

/// Adds `counts` to their buckets in one statement; returns the buckets written. Counts of an
/// app that no longer exists are dropped (its rows went with it). Rows are written in key order,
/// so validators flushing the same buckets lock them in the same order and cannot deadlock.
/// Prepared once per pooled connection: every validator sends it every flush.
pub async fn record<C: crate::db::Hot>(c: &C, counts: &[Count]) -> StoreResult<u64> {
    // Grouped in SQL too: one statement must not upsert a bucket twice (PostgreSQL refuses).
    const SQL: &str = "INSERT INTO validation_buckets AS b (account_id, app_id, minute, outcome, n)
        SELECT (array_agg(u.account_id))[1], u.app_id, date_trunc('minute', u.minute),
               u.outcome, sum(u.n)::bigint
          FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::bigint[])
               AS u(account_id, app_id, minute, outcome, n)
         WHERE EXISTS (SELECT 1 FROM apps a WHERE a.id = u.app_id)
         GROUP BY u.app_id, date_trunc('minute', u.minute), u.outcome
         ORDER BY 2, 3, 4
        ON CONFLICT (app_id, minute, outcome) DO UPDATE SET n = b.n + EXCLUDED.n";
    if counts.is_empty() {
        return Ok(0);
    }
    let accounts: Vec<Uuid> = counts.iter().map(|r| r.account_id).collect();
    let apps: Vec<Uuid> = counts.iter().map(|r| r.app_id).collect();
    let minutes: Vec<DateTime<Utc>> = counts.iter().map(|r| r.minute).collect();
    let outcomes: Vec<&str> = counts.iter().map(|r| r.outcome.as_str()).collect();
    let ns: Vec<i64> = counts.iter().map(|r| r.n).collect();
    let stmt = c.statement(SQL).await?;
    Ok(c.client()
        .execute(&stmt, &[&accounts, &apps, &minutes, &outcomes, &ns])
        .await?)
}

/// Validations per minute and outcome over the last `minutes` minutes (the current one
/// included), zero-filled: every series has one value per minute of `minutes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Series {
    /// The first minute.
    pub from: DateTime<Utc>,
    pub step_secs: i64,
    /// The start of every minute, oldest first.
    pub minutes: Vec<DateTime<Utc>>,
    /// Per outcome seen in the window, its count in every minute.
    pub series: BTreeMap<String, Vec<i64>>,
    /// Per outcome, its sum over the window.
    pub totals: BTreeMap<String, i64>,
}

/// The account's validations (of one of its apps, when given) over the last `minutes` minutes
/// before `now`, clamped to `1..=`[`MAX_MINUTES`]. An app of another account is not found.
pub async fn series<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Option<Uuid>,
    minutes: i64,
    now: DateTime<Utc>,
) -> StoreResult<Series> {
    if let Some(app) = app_id {
        let found = c
            .query_opt(
                "SELECT 1 FROM apps WHERE id = $1 AND account_id = $2",
                &[&app, &account_id],
            )
            .await?;
        if found.is_none() {
            return Err(StoreError::NotFound("app"));
        }
    }
    let count = minutes.clamp(1, MAX_MINUTES);
    let last = minute_of(now);
    let from = last - Duration::minutes(count - 1);
    let rows = c
        .query(
            "SELECT minute, outcome, sum(n)::bigint FROM validation_buckets
              WHERE account_id = $1 AND ($2::uuid IS NULL OR app_id = $2)
                AND minute >= $3 AND minute <= $4
              GROUP BY minute, outcome",
            &[&account_id, &app_id, &from, &last],
        )
        .await?;
    let len = count as usize;
    let mut series: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for r in &rows {
        let minute: DateTime<Utc> = r.try_get(0)?;
        let outcome: String = r.try_get(1)?;
        let n: i64 = r.try_get(2)?;
        let Ok(i) = usize::try_from((minute - from).num_minutes()) else {
            continue;
        };
        if i >= len {
            continue;
        }
        *totals.entry(outcome.clone()).or_default() += n;
        series.entry(outcome).or_insert_with(|| vec![0; len])[i] += n;
    }
    Ok(Series {
        from,
        step_secs: STEP_SECS,
        minutes: (0..count).map(|i| from + Duration::minutes(i)).collect(),
        series,
        totals,
    })
}

/// Drops buckets older than `retention`, in short statements; returns the rows deleted.
pub async fn prune<C: GenericClient + Sync>(c: &C, retention: Duration) -> StoreResult<u64> {
    let cutoff = Utc::now() - retention;
    let mut deleted = 0;
    for _ in 0..PRUNE_ROUNDS {
        let n = c
            .execute(
                "DELETE FROM validation_buckets b
                  USING (SELECT app_id, minute, outcome FROM validation_buckets
                          WHERE minute < $1 LIMIT $2) o
                  WHERE b.app_id = o.app_id AND b.minute = o.minute AND b.outcome = o.outcome",
                &[&cutoff, &PRUNE_ROWS],
            )
            .await?;
        deleted += n;
        if n < PRUNE_ROWS as u64 {
            break;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{tenant, TestDb};

    fn count(t: &crate::testing::Tenant, minute: DateTime<Utc>, outcome: &str, n: i64) -> Count {
        Count {
            account_id: t.actor.account_id,
            app_id: t.app.id,
            minute,
            outcome: outcome.into(),
            n,
        }
    }

    #[test]
    fn minutes_truncate_down() {
        let t = DateTime::from_timestamp(1_700_000_059, 999).unwrap();
        assert_eq!(minute_of(t).timestamp(), 1_700_000_040);
        let before_epoch = DateTime::from_timestamp(-1, 0).unwrap();
        assert_eq!(minute_of(before_epoch).timestamp(), -60);
    }

    #[tokio::test]
    async fn upserts_add_up_and_reads_zero_fill_per_outcome() {
        let db = TestDb::new().await;
        let mut c = db.client().await;
        let t = tenant(&mut c, false).await;
        let now = Utc::now();
        let m0 = minute_of(now);
        let m2 = m0 - Duration::minutes(2);
        // Seconds into a minute land in it; a repeated key within one batch adds up.
        let batch = vec![
            count(&t, m0 + Duration::seconds(7), "valid", 3),
            count(&t, m0, "valid", 2),
            count(&t, m2, "banned", 1),
            count(&t, m2, "valid", 4),
        ];
        assert_eq!(record(&c, &batch).await.unwrap(), 3);
        assert_eq!(
            record(&c, &[count(&t, m0, "valid", 1)]).await.unwrap(),
            1,
            "an existing bucket is added to"
        );
        // Older than the window asked for: not in it.
        record(&c, &[count(&t, m0 - Duration::minutes(9), "expired", 5)])
            .await
            .unwrap();

        let s = series(&c, t.actor.account_id, None, 5, now).await.unwrap();
        assert_eq!(s.step_secs, 60);
        assert_eq!(s.from, m0 - Duration::minutes(4));
        assert_eq!(s.minutes.len(), 5);
        assert_eq!(s.minutes[4], m0);
        assert_eq!(s.series["valid"], vec![0, 0, 4, 0, 6]);
        assert_eq!(s.series["banned"], vec![0, 0, 1, 0, 0]);
        assert!(!s.series.contains_key("expired"));
        assert_eq!(s.totals["valid"], 10);
        assert_eq!(s.totals["banned"], 1);

        let day = series(&c, t.actor.account_id, None, 100_000, now)
            .await
            .unwrap();
        assert_eq!(day.minutes.len(), MAX_MINUTES as usize, "clamped");
        assert_eq!(day.totals["expired"], 5);
        let one = series(&c, t.actor.account_id, None, 0, now).await.unwrap();
        assert_eq!(one.minutes, vec![m0]);
        assert_eq!(one.series["valid"], vec![6]);
    }

    #[tokio::test]
    async fn reads_filter_by_app_and_account() {
        let db = TestDb::new().await;
        let mut c = db.client().await;
        let t = tenant(&mut c, false).await;
        let other_app = {
            let mut w = crate::write::WriteTx::begin(&mut c, t.actor.clone())
                .await
                .unwrap();
            let patch = crate::store::apps::AppPatch {
                name: Some("second".into()),
                ..Default::default()
            };
            let app = crate::store::apps::create(&mut w, &patch).await.unwrap();
            w.commit().await.unwrap();
            app
        };
        let stranger = tenant(&mut c, false).await;
        let now = Utc::now();
        let m = minute_of(now);
        let mut second = count(&t, m, "valid", 7);
        second.app_id = other_app.id;
        record(
            &c,
            &[
                count(&t, m, "valid", 2),
                second,
                count(&stranger, m, "valid", 100),
            ],
        )
        .await
        .unwrap();

        let all = series(&c, t.actor.account_id, None, 3, now).await.unwrap();
        assert_eq!(all.series["valid"], vec![0, 0, 9]);
        let first = series(&c, t.actor.account_id, Some(t.app.id), 3, now)
            .await
            .unwrap();
        assert_eq!(first.series["valid"], vec![0, 0, 2]);
        let other = series(&c, t.actor.account_id, Some(other_app.id), 3, now)
            .await
            .unwrap();
        assert_eq!(other.totals["valid"], 7);
        // Another account's app is not found, not an empty series.
        assert!(matches!(
            series(&c, t.actor.account_id, Some(stranger.app.id), 3, now).await,
            Err(StoreError::NotFound("app"))
        ));
        let none = series(&c, t.actor.account_id, None, 3, now - Duration::hours(1))
            .await
            .unwrap();
        assert!(none.series.is_empty() && none.totals.is_empty());
        assert_eq!(none.minutes.len(), 3);
    }

    #[tokio::test]
    async fn deleted_apps_lose_their_buckets_and_old_buckets_are_pruned() {
        let db = TestDb::new().await;
        let mut c = db.client().await;
        let t = tenant(&mut c, false).await;
        let now = Utc::now();
        let old = minute_of(now) - Duration::days(40);
        record(
            &c,
            &[
                count(&t, old, "valid", 1),
                count(&t, minute_of(now), "valid", 1),
            ],
        )
        .await
        .unwrap();
        assert_eq!(prune(&c, Duration::days(30)).await.unwrap(), 1);
        let left: i64 = c
            .query_one("SELECT count(*) FROM validation_buckets", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 1);

        c.execute("DELETE FROM apps WHERE id = $1", &[&t.app.id])
            .await
            .unwrap();
        let left: i64 = c
            .query_one("SELECT count(*) FROM validation_buckets", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "the app's buckets went with it");
        assert_eq!(
            record(&c, &[count(&t, minute_of(now), "valid", 1)])
                .await
                .unwrap(),
            0,
            "a late flush for a deleted app writes nothing"
        );
    }
}
