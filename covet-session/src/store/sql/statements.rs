//! The SQL of every operation, and what tells the databases apart.

use sha2::{Digest, Sha256};

/// Longest identifier PostgreSQL keeps (longer ones are truncated).
pub(super) const MAX_IDENTIFIER_LEN: usize = 63;

/// One database's dialect: its name in errors, which errors are worth a
/// retry, and its statements for a table.
#[derive(Debug)]
pub(super) struct Dialect {
    pub(super) name: &'static str,
    pub(super) is_transient: fn(&sqlx::Error) -> bool,
    pub(super) statements: fn(&str) -> Statements,
}

/// The SQL of every operation, formatted once for the store's table.
///
/// Every dialect binds the parameters in the same order.
#[derive(Debug)]
pub(super) struct Statements {
    /// The table and its indexes, each `IF NOT EXISTS`.
    pub(super) migrate: Vec<String>,
    /// What later versions added to a table created before (errors mean
    /// "already there" and are ignored).
    pub(super) upgrade: Vec<String>,
    /// Binds key, data, expiry, user.
    pub(super) insert: String,
    /// Binds key, now; selects data, expiry.
    pub(super) load: String,
    /// Binds key, now; selects data and locks the row.
    pub(super) lock: String,
    /// Binds data, expiry, user, key.
    pub(super) update: String,
    /// Binds expiry, key, now.
    pub(super) touch: String,
    /// Binds key.
    pub(super) delete: String,
    /// Binds now.
    pub(super) delete_expired: String,
    /// Binds now; selects the number of live sessions.
    pub(super) count: String,
    /// Binds user, now; selects key, data, expiry.
    pub(super) user_sessions: String,
    /// Binds user, now.
    pub(super) delete_user: String,
}

impl Statements {
    /// The statements other than `migrate` for `table` (already quoted),
    /// with `p(n)` the n-th (1-based) parameter's placeholder and `lock` the
    /// clause that locks the selected row.
    pub(super) fn dml(
        table: &str,
        p: fn(usize) -> String,
        lock: &str,
        migrate: Vec<String>,
        upgrade: Vec<String>,
    ) -> Statements {
        Statements {
            migrate,
            upgrade,
            insert: format!(
                "INSERT INTO {table} (storage_key, data, expires_at, user_id) VALUES ({}, {}, {}, {})",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            load: format!(
                "SELECT data, expires_at FROM {table} WHERE storage_key = {} AND expires_at > {}",
                p(1),
                p(2)
            ),
            lock: format!(
                "SELECT data FROM {table} WHERE storage_key = {} AND expires_at > {}{lock}",
                p(1),
                p(2)
            ),
            update: format!(
                "UPDATE {table} SET data = {}, expires_at = {}, user_id = {} WHERE storage_key = {}",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            touch: format!(
                "UPDATE {table} SET expires_at = {} WHERE storage_key = {} AND expires_at > {}",
                p(1),
                p(2),
                p(3)
            ),
            delete: format!("DELETE FROM {table} WHERE storage_key = {}", p(1)),
            delete_expired: format!("DELETE FROM {table} WHERE expires_at <= {}", p(1)),
            count: format!("SELECT COUNT(*) FROM {table} WHERE expires_at > {}", p(1)),
            user_sessions: format!(
                "SELECT storage_key, data, expires_at FROM {table} WHERE user_id = {} AND expires_at > {}",
                p(1),
                p(2)
            ),
            delete_user: format!(
                "DELETE FROM {table} WHERE user_id = {} AND expires_at > {}",
                p(1),
                p(2)
            ),
        }
    }
}

/// The name of the expiry index of `table`, at most 63 characters:
/// `<table>_expires_at_idx`, or for long table names a prefix of the name
/// and a hash of the whole name, so two tables never share an index name.
pub(super) fn index_name(table: &str) -> String {
    named_index(table, "_expires_at_idx", "_exp_idx")
}

/// The name of the user index of `table`, as [`index_name`].
pub(super) fn user_index_name(table: &str) -> String {
    named_index(table, "_user_id_idx", "_usr_idx")
}

fn named_index(table: &str, suffix: &str, short: &str) -> String {
    if table.len() + suffix.len() <= MAX_IDENTIFIER_LEN {
        return format!("{table}{suffix}");
    }
    let digest = Sha256::digest(table.as_bytes());
    let mut hash = String::with_capacity(16);
    for b in &digest[..8] {
        hash.push_str(&format!("{b:02x}"));
    }
    // Table names are ASCII, so any byte index is a char boundary.
    format!("{}_{hash}{short}", &table[..38])
}
