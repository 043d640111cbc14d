//! The validators' write-behind of the statistics: a flush hands over the validations it
//! buffered, and they land as per-day counters, distinct IPs/HWIDs and the newest requests.
//!
//! Validations are aggregated in memory first ([`Aggregate`]: per license, counts per UTC day,
//! the distinct IPs and HWIDs, the newest [`REQUESTS_PER_LICENSE`] requests), so a flush writes
//! a few rows per license however many validations it carries. The rows go in short set-based
//! statements ([`Rows::parts`], each a few hundred rows at most) in key order: the cache misses
//! sharing PostgreSQL never queue behind one long write (see `validator/src/usage.rs`), and two
//! validators upserting the same rows lock them in the same order, so they cannot deadlock.
//! The tables have no foreign keys on purpose (migration 0015): an upsert's check would lock,
//! and so rewrite, the license rows the validators' misses read.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::error::StoreResult;

/// How a validation of an existing license ended, as CyberLicense's usage counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UseStatus {
    /// Valid.
    Success,
    /// Refused by an IP or HWID limit.
    Blocked,
    /// Any other refusal of an existing license.
    Invalid,
}

impl UseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UseStatus::Success => "success",
            UseStatus::Blocked => "blocked",
            UseStatus::Invalid => "invalid",
        }
    }

    fn index(self) -> usize {
        match self {
            UseStatus::Success => 0,
            UseStatus::Blocked => 1,
            UseStatus::Invalid => 2,
        }
    }
}

/// One validation of an existing license.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseEvent {
    pub license_id: Uuid,
    pub ip: Option<String>,
    pub hwid: Option<String>,
    pub status: UseStatus,
    pub at: DateTime<Utc>,
}

/// Requests kept per license: what a flush writes at most, and what [`prune`] leaves.
pub const REQUESTS_PER_LICENSE: usize = 100;

/// The columns' length caps (characters), from migration 0015.
const REQUEST_IP_CAP: usize = 64;
const REQUEST_HWID_CAP: usize = 256;
const SEEN_CAP: usize = 256;

/// Upserted rows per statement: like the usage counters' 100-row `UPDATE`s, about a
/// millisecond of PostgreSQL's time.
const UPSERT_ROWS: usize = 100;
/// Inserted request rows per statement (no conflict to resolve, so cheaper per row).
const INSERT_ROWS: usize = 500;

/// Rows deleted per statement by [`prune`].
const PRUNE_ROWS: i64 = 5_000;
/// Statements of one kind per [`prune`] at most: a backlog beyond is left to the next run.
const PRUNE_ROUNDS: usize = 200;
/// Licenses whose request rows [`prune`] trims per statement.
const TRIM_LICENSES: usize = 500;
/// Licenses with requests written this recently are the ones [`prune`] trims to the newest
/// [`REQUESTS_PER_LICENSE`]: a license gains excess rows only when a flush writes some, and the
/// janitor runs every few seconds, so older excess was trimmed by an earlier run (and any left
/// by a long janitor outage goes with the retention). Reading every license's rows instead
/// would cost a scan of the whole table per run.
const TRIM_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// Credit-spend nonces are kept this long: far beyond a client's retry window.
const SPEND_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// The request log entry of one validation.
#[derive(Debug, Clone)]
struct Request {
    ip: Option<String>,
    hwid: Option<String>,
    status: UseStatus,
    at: DateTime<Utc>,
}

/// One day's counts of a license: success, blocked, invalid; and the last use.
#[derive(Debug, Clone)]
struct Day {
    day: NaiveDate,
    counts: [i64; 3],
    last: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct LicenseUse {
    /// Usually one entry; two across midnight.
    days: Vec<Day>,
    ips: HashMap<String, DateTime<Utc>>,
    hwids: HashMap<String, DateTime<Utc>>,
    /// The newest requests, oldest first, at most [`REQUESTS_PER_LICENSE`].
    recent: VecDeque<Request>,
}

/// Validations aggregated per license, bounded in the entries it holds (licenses, days,
/// distinct values, requests): repeated validations of a known license cost no room.
#[derive(Debug)]
pub struct Aggregate {
    licenses: HashMap<Uuid, LicenseUse>,
    entries: usize,
    limit: usize,
}

impl Default for Aggregate {
    fn default() -> Aggregate {
        Aggregate::with_limit(usize::MAX)
    }
}

impl Aggregate {
    /// An empty aggregate holding at most `limit` entries.
    pub fn with_limit(limit: usize) -> Aggregate {
        Aggregate {
            licenses: HashMap::new(),
            entries: 0,
            limit,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.licenses.is_empty()
    }

    /// Entries held: licenses, their days, distinct IPs and HWIDs, requests.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Adds a validation. False when the limit kept part of it out (a new license's event
    /// whole; else a new day's counts, a new IP or HWID, or a request that would have grown
    /// the log); what fits in existing entries is always counted.
    pub fn add(&mut self, event: UseEvent) -> bool {
        let UseEvent {
            license_id,
            ip,
            hwid,
            status,
            at,
        } = event;
        let room = self.limit.saturating_sub(self.entries);
        let license = match self.licenses.get_mut(&license_id) {
            Some(l) => l,
            // A license with no count is nothing to write: it needs a day entry too.
            None if room < 2 => return false,
            None => {
                self.entries += 1;
                self.licenses.entry(license_id).or_default()
            }
        };
        let mut kept = true;
        let mut grow = |entries: &mut usize| {
            if *entries < self.limit {
                *entries += 1;
                true
            } else {
                kept = false;
                false
            }
        };
        let day = at.date_naive();
        match license.days.iter_mut().find(|d| d.day == day) {
            Some(d) => {
                d.counts[status.index()] += 1;
                d.last = d.last.max(at);
            }
            None if grow(&mut self.entries) => {
                let mut counts = [0; 3];
                counts[status.index()] = 1;
                license.days.push(Day {
                    day,
                    counts,
                    last: at,
                });
            }
            None => {}
        }
        let ip = ip.and_then(clean);
        let hwid = hwid.and_then(clean);
        for (value, seen) in [(&ip, &mut license.ips), (&hwid, &mut license.hwids)] {
            let Some(value) = value else { continue };
            let value = cut(value, SEEN_CAP);
            match seen.get_mut(value) {
                Some(last) => *last = (*last).max(at),
                None if grow(&mut self.entries) => {
                    seen.insert(value.to_owned(), at);
                }
                None => {}
            }
        }
        let recent = &mut license.recent;
        let full = recent.len() >= REQUESTS_PER_LICENSE;
        // Older than every kept request of a full log: not among the newest.
        if full && recent.front().is_some_and(|r| at < r.at) {
            return kept;
        }
        if !full && !grow(&mut self.entries) {
            return kept;
        }
        let request = Request {
            ip: ip.map(|v| cut_owned(v, REQUEST_IP_CAP)),
            hwid: hwid.map(|v| cut_owned(v, REQUEST_HWID_CAP)),
            status,
            at,
        };
        // Validations arrive in time order, so this is nearly always the end.
        let at_index = recent.partition_point(|r| r.at <= at);
        recent.insert(at_index, request);
        if recent.len() > REQUESTS_PER_LICENSE {
            recent.pop_front();
        }
        kept
    }

    /// Adds another aggregate's contents (ignoring this one's limit: what was held stays).
    pub fn merge(&mut self, other: Aggregate) {
        for (id, theirs) in other.licenses {
            let Some(ours) = self.licenses.get_mut(&id) else {
                self.licenses.insert(id, theirs);
                continue;
            };
            for d in theirs.days {
                match ours.days.iter_mut().find(|o| o.day == d.day) {
                    Some(o) => {
                        for (a, b) in o.counts.iter_mut().zip(d.counts) {
                            *a += b;
                        }
                        o.last = o.last.max(d.last);
                    }
                    None => ours.days.push(d),
                }
            }
            for (seen, more) in [(&mut ours.ips, theirs.ips), (&mut ours.hwids, theirs.hwids)] {
                for (value, at) in more {
                    let last = seen.entry(value).or_insert(at);
                    *last = (*last).max(at);
                }
            }
            let mut recent: Vec<Request> = ours.recent.drain(..).chain(theirs.recent).collect();
            recent.sort_by_key(|r| r.at);
            let skip = recent.len().saturating_sub(REQUESTS_PER_LICENSE);
            ours.recent = recent.into_iter().skip(skip).collect();
        }
        self.entries = self
            .licenses
            .values()
            .map(|l| 1 + l.days.len() + l.ips.len() + l.hwids.len() + l.recent.len())
            .sum();
    }

    /// The rows to write, in key order (see the module's comment).
    pub fn into_rows(self) -> Rows {
        let mut rows = Rows::default();
        for (id, l) in self.licenses {
            for d in l.days {
                rows.daily.push((id, d.day, d.counts, d.last));
            }
            for (kind, seen) in [("hwid", l.hwids), ("ip", l.ips)] {
                for (value, at) in seen {
                    rows.seen.push((id, kind, value, at));
                }
            }
            for r in l.recent {
                rows.requests.push((id, r));
            }
        }
        rows.daily.sort_unstable_by_key(|r| (r.0, r.1));
        rows.seen
            .sort_unstable_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
        rows.requests.sort_by_key(|(id, r)| (*id, r.at));
        rows
    }
}

/// A value worth recording: NULs dropped (PostgreSQL's text cannot hold them), empty is none.
fn clean(mut value: String) -> Option<String> {
    if value.contains('\0') {
        value.retain(|c| c != '\0');
    }
    (!value.is_empty()).then_some(value)
}

/// The first `cap` characters (the columns' caps count characters).
fn cut(value: &str, cap: usize) -> &str {
    match value.char_indices().nth(cap) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}

fn cut_owned(mut value: String, cap: usize) -> String {
    let end = cut(&value, cap).len();
    value.truncate(end);
    value
}

/// An aggregate's rows, sorted by key.
#[derive(Debug, Default)]
pub struct Rows {
    daily: Vec<DailyRow>,
    seen: Vec<SeenRow>,
    requests: Vec<(Uuid, Request)>,
}

/// License, UTC day, counts (success, blocked, invalid), last use.
type DailyRow = (Uuid, NaiveDate, [i64; 3], DateTime<Utc>);
/// License, kind (`ip`/`hwid`), value, last sighting.
type SeenRow = (Uuid, &'static str, String, DateTime<Utc>);

impl Rows {
    pub fn is_empty(&self) -> bool {
        self.daily.is_empty() && self.seen.is_empty() && self.requests.is_empty()
    }

    /// The statements that write these rows, each short (see the module's comment).
    pub fn parts(&self) -> Vec<Part<'_>> {
        let mut parts: Vec<Part<'_>> = self
            .daily
            .chunks(UPSERT_ROWS)
            .map(|r| Part(PartRows::Daily(r)))
            .collect();
        parts.extend(
            self.seen
                .chunks(UPSERT_ROWS)
                .map(|r| Part(PartRows::Seen(r))),
        );
        parts.extend(
            self.requests
                .chunks(INSERT_ROWS)
                .map(|r| Part(PartRows::Requests(r))),
        );
        parts
    }
}

/// One statement's rows.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a>(PartRows<'a>);

#[derive(Debug, Clone, Copy)]
enum PartRows<'a> {
    Daily(&'a [DailyRow]),
    Seen(&'a [SeenRow]),
    Requests(&'a [(Uuid, Request)]),
}

impl Part<'_> {
    /// Rows in this statement.
    pub fn len(&self) -> usize {
        match self.0 {
            PartRows::Daily(r) => r.len(),
            PartRows::Seen(r) => r.len(),
            PartRows::Requests(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes one part: counts added to the day's row, distinct values' last sighting moved on,
/// requests appended.
pub async fn write_part<C: GenericClient + Sync>(c: &C, part: Part<'_>) -> StoreResult<u64> {
    let n = match part.0 {
        PartRows::Daily(rows) => {
            let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
            let days: Vec<NaiveDate> = rows.iter().map(|r| r.1).collect();
            let [success, blocked, invalid]: [Vec<i64>; 3] =
                std::array::from_fn(|i| rows.iter().map(|r| r.2[i]).collect());
            let last: Vec<DateTime<Utc>> = rows.iter().map(|r| r.3).collect();
            c.execute(
                "INSERT INTO license_daily_usage AS d
                        (license_id, day, success, blocked, invalid, last_used_at)
                 SELECT * FROM unnest($1::uuid[], $2::date[], $3::bigint[], $4::bigint[],
                                      $5::bigint[], $6::timestamptz[])
                 ON CONFLICT (license_id, day) DO UPDATE
                    SET success = d.success + EXCLUDED.success,
                        blocked = d.blocked + EXCLUDED.blocked,
                        invalid = d.invalid + EXCLUDED.invalid,
                        last_used_at = greatest(d.last_used_at, EXCLUDED.last_used_at)",
                &[&ids, &days, &success, &blocked, &invalid, &last],
            )
            .await?
        }
        PartRows::Seen(rows) => {
            let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
            let kinds: Vec<&str> = rows.iter().map(|r| r.1).collect();
            let values: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
            let last: Vec<DateTime<Utc>> = rows.iter().map(|r| r.3).collect();
            // A sighting no newer than the stored one rewrites nothing.
            c.execute(
                "INSERT INTO license_seen AS s (license_id, kind, value, last_seen_at)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
                 ON CONFLICT (license_id, kind, value) DO UPDATE
                    SET last_seen_at = EXCLUDED.last_seen_at
                  WHERE s.last_seen_at < EXCLUDED.last_seen_at",
                &[&ids, &kinds, &values, &last],
            )
            .await?
        }
        PartRows::Requests(rows) => {
            let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
            let ips: Vec<Option<&str>> = rows.iter().map(|r| r.1.ip.as_deref()).collect();
            let hwids: Vec<Option<&str>> = rows.iter().map(|r| r.1.hwid.as_deref()).collect();
            let statuses: Vec<&str> = rows.iter().map(|r| r.1.status.as_str()).collect();
            let at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.1.at).collect();
            c.execute(
                "INSERT INTO license_requests (license_id, ip, hwid, status, created_at)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],
                                      $5::timestamptz[])",
                &[&ids, &ips, &hwids, &statuses, &at],
            )
            .await?
        }
    };
    Ok(n)
}

/// Records validations: aggregated, then written in short statements (see the module's
/// comment). A failure leaves the statements before it written.
pub async fn record<C: GenericClient + Sync>(c: &C, events: &[UseEvent]) -> StoreResult<()> {
    let mut aggregate = Aggregate::default();
    for event in events {
        aggregate.add(event.clone());
    }
    let rows = aggregate.into_rows();
    for part in rows.parts() {
        write_part(c, part).await?;
    }
    Ok(())
}

/// Drops statistics older than `retention` (requests, days, IPs/HWIDs last seen before it),
/// requests beyond each license's newest [`REQUESTS_PER_LICENSE`], and credit-spend nonces
/// older than a day; in short statements. Returns the rows deleted.
pub async fn prune<C: GenericClient + Sync>(
    c: &C,
    retention: chrono::Duration,
) -> StoreResult<u64> {
    let now = Utc::now();
    let cutoff = now - retention;
    let cutoff_day = cutoff.date_naive();
    let spent_before = now - SPEND_RETENTION;
    let mut deleted = 0;
    deleted += repeat(
        c,
        "DELETE FROM license_requests WHERE id IN
           (SELECT id FROM license_requests WHERE created_at < $1 LIMIT $2)",
        &cutoff,
    )
    .await?;
    deleted += repeat(
        c,
        "DELETE FROM license_daily_usage d
          USING (SELECT license_id, day FROM license_daily_usage WHERE day < $1 LIMIT $2) o
          WHERE d.license_id = o.license_id AND d.day = o.day",
        &cutoff_day,
    )
    .await?;
    deleted += repeat(
        c,
        "DELETE FROM license_seen s
          USING (SELECT license_id, kind, value FROM license_seen
                  WHERE last_seen_at < $1 LIMIT $2) o
          WHERE s.license_id = o.license_id AND s.kind = o.kind AND s.value = o.value",
        &cutoff,
    )
    .await?;
    deleted += repeat(
        c,
        "DELETE FROM license_spends s
          USING (SELECT license_id, nonce FROM license_spends WHERE created_at < $1 LIMIT $2) o
          WHERE s.license_id = o.license_id AND s.nonce = o.nonce",
        &spent_before,
    )
    .await?;
    deleted += trim_requests(c, now - TRIM_WINDOW).await?;
    Ok(deleted)
}

/// Runs a bounded delete (`$1` the cutoff, `$2` the batch) until it finds less than a full
/// batch, or [`PRUNE_ROUNDS`] times.
async fn repeat<C: GenericClient + Sync>(
    c: &C,
    sql: &str,
    before: &(dyn tokio_postgres::types::ToSql + Sync),
) -> StoreResult<u64> {
    let mut total = 0;
    for _ in 0..PRUNE_ROUNDS {
        let n = c.execute(sql, &[before, &PRUNE_ROWS]).await?;
        total += n;
        if n < PRUNE_ROWS as u64 {
            break;
        }
    }
    Ok(total)
}

/// Deletes the requests beyond the newest [`REQUESTS_PER_LICENSE`] of every license with
/// requests written since `since`, [`TRIM_LICENSES`] licenses per statement.
async fn trim_requests<C: GenericClient + Sync>(c: &C, since: DateTime<Utc>) -> StoreResult<u64> {
    let candidates: Vec<Uuid> = c
        .query(
            "SELECT DISTINCT license_id FROM license_requests WHERE created_at >= $1",
            &[&since],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let keep = REQUESTS_PER_LICENSE as i64;
    let mut deleted = 0;
    for ids in candidates.chunks(TRIM_LICENSES) {
        deleted += c
            .execute(
                "DELETE FROM license_requests WHERE id IN
                   (SELECT x.id FROM unnest($1::uuid[]) AS l(id)
                      CROSS JOIN LATERAL
                        (SELECT r.id FROM license_requests r WHERE r.license_id = l.id
                          ORDER BY r.created_at DESC, r.id DESC OFFSET $2) x)",
                &[&ids, &keep],
            )
            .await?;
    }
    Ok(deleted)
}
