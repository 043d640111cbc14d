//! Keygen's page-based pagination: `limit` (1..100, default 10) or `page[number]` with
//! `page[size]` (1..100), and `links{self, first, prev, next, last}` on the collection. Filters
//! come from the same query string.

use keyward_shared::keygen_doc::{KgError, Source};
use keyward_shared::store::Offset;
use serde_json::{json, Value};
use uuid::Uuid;

pub struct Query {
    pairs: Vec<(String, String)>,
    pub page: Offset,
    /// Page-number mode (otherwise `limit` mode, with no page links).
    numbered: bool,
    size: i64,
    number: i64,
}

fn parameter(detail: impl Into<String>, name: &'static str) -> KgError {
    KgError::bad_request(detail, Source::Parameter(name))
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, KgError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let int = |k: &'static str| -> Result<Option<i64>, KgError> {
            get(k)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| parameter(format!("{k} must be an integer"), k))
                })
                .transpose()
        };
        let size = int("page[size]")?;
        let number = int("page[number]")?;
        let limit = int("limit")?;
        if size.is_some_and(|s| !(1..=100).contains(&s)) {
            return Err(parameter(
                "page size must be a number between 1 and 100",
                "page[size]",
            ));
        }
        if number.is_some_and(|n| !(1..=1_000_000).contains(&n)) {
            return Err(parameter(
                "page number must be a number between 1 and 1000000",
                "page[number]",
            ));
        }
        if limit.is_some_and(|l| !(1..=100).contains(&l)) {
            return Err(parameter(
                "limit must be a number between 1 and 100",
                "limit",
            ));
        }
        let numbered = size.is_some() || number.is_some();
        let size = size.or(limit).unwrap_or(10);
        let number = number.unwrap_or(1);
        Ok(Query {
            page: Offset {
                limit: size,
                offset: (number - 1) * size,
            },
            pairs,
            numbered,
            size,
            number,
        })
    }

    /// A filter value (`?product=…`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// A filter naming a resource by id; an id that is not a UUID matches nothing, as an
    /// unknown id would.
    pub fn id(&self, name: &'static str) -> Result<Option<Uuid>, KgError> {
        self.get(name)
            .map(|v| {
                Uuid::parse_str(v).map_err(|_| parameter(format!("{name} must be an id"), name))
            })
            .transpose()
    }

    pub fn flag(&self, name: &'static str) -> Result<Option<bool>, KgError> {
        match self.get(name) {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(_) => Err(parameter(format!("{name} must be true or false"), name)),
        }
    }

    /// The page of `items` (a whole list read in memory: the short ones) as a collection.
    pub fn page_of<T>(&self, path: &str, items: &[T], render: impl Fn(&T) -> Value) -> Value {
        let data = items
            .iter()
            .skip(usize::try_from(self.page.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(self.page.limit).unwrap_or(0))
            .map(render)
            .collect();
        self.collection(path, data, items.len() as i64)
    }

    /// The collection document with its pagination links.
    pub fn collection(&self, path: &str, data: Vec<Value>, total: i64) -> Value {
        let mut doc = json!({"data": data, "meta": {"count": total}});
        if self.numbered {
            let last = ((total + self.size - 1) / self.size).max(1);
            let link = |n: i64| format!("{path}?page[number]={n}&page[size]={}", self.size);
            doc["links"] = json!({
                "self": link(self.number),
                "first": link(1),
                "prev": (self.number > 1).then(|| link(self.number - 1)),
                "next": (self.number < last).then(|| link(self.number + 1)),
                "last": link(last),
            });
            doc["meta"]["pages"] = json!(last);
        } else {
            doc["links"] = json!({"self": format!("{path}?limit={}", self.size)});
        }
        doc
    }
}
