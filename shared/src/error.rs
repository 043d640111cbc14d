use thiserror::Error;

/// Errors of the store layer. `Invalid`, `NotFound` and `Conflict` are caused by the caller's input
/// and map to 4xx; `Database`/`Pool` are infrastructure failures and map to 5xx/503.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A limit (machines on a license, …) would be exceeded: a conflict the caller can name.
    #[error("{0}")]
    LimitReached(String),
    /// Stored data the code cannot use (a signing key that does not decode, …): a 500.
    #[error("{0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("database pool error: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl StoreError {
    /// True when the failure means the database could not be reached (as opposed to a query that
    /// the database rejected). Callers use this to answer 503 instead of 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            StoreError::Database(e) => e.is_closed() || e.as_db_error().is_none(),
            _ => false,
        }
    }

    /// The database refused a value (out of range or malformed for its type, too long for an
    /// index): bad input that no earlier check caught, to be answered 400 with its reason rather
    /// than 500. `None` for every other failure.
    pub fn rejected_value(&self) -> Option<String> {
        let StoreError::Database(e) = self else {
            return None;
        };
        let db = e.as_db_error()?;
        // Class 22: data exception; 54: program limit exceeded (e.g. an index row too large).
        let class = db.code().code().get(..2)?;
        matches!(class, "22" | "54").then(|| db.message().to_string())
    }

    /// Maps a unique-violation into `Conflict` with the given message; other errors pass through.
    pub fn conflict_on_unique(self, message: &str) -> StoreError {
        if let StoreError::Database(e) = &self {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                return StoreError::Conflict(message.to_string());
            }
        }
        self
    }

    /// A foreign-key violation as a conflict (a row still refers to the one being removed).
    pub fn conflict_on_foreign_key(self, message: &str) -> StoreError {
        if let StoreError::Database(e) = &self {
            if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) {
                return StoreError::Conflict(message.to_string());
            }
        }
        self
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
