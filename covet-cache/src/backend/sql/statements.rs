//! The SQL of every operation, per database.
//!
//! Every statement compares keys through `key_id`, a binary column (byte
//! order, no collation): the key's UTF-8 bytes, or for keys longer than
//! [`KEY_ID_PREFIX`] bytes that many bytes followed by the SHA-256 of the
//! whole key. The full key is kept in `cache_key` and checked on every read.
//! Expiry is epoch milliseconds of the database's clock; `NULL` never expires.

/// Key bytes kept as they are at the front of `key_id`.
pub(super) const KEY_ID_PREFIX: usize = 190;

/// Longest accepted table name (PostgreSQL keeps 63 bytes of an identifier;
/// the tag table and index names add up to 12).
pub(super) const MAX_TABLE_LEN: usize = 48;

/// Which database a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    not(all(
        feature = "sql-postgres",
        feature = "sql-mysql",
        feature = "sql-sqlite"
    )),
    expect(dead_code, reason = "only the enabled databases' pools are built")
)]
pub(super) enum Kind {
    Postgres,
    Mysql,
    Sqlite,
}

impl Kind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Mysql => "mysql",
            Kind::Sqlite => "sqlite",
        }
    }

    /// The database's clock in epoch milliseconds, as a `BIGINT`.
    fn now(self) -> &'static str {
        match self {
            Kind::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
            // sqlx sets the session time zone to UTC.
            Kind::Mysql => "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)",
            Kind::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        }
    }

    /// The `n`-th (1-based) parameter.
    fn p(self, n: usize) -> String {
        match self {
            Kind::Postgres => format!("${n}"),
            Kind::Mysql | Kind::Sqlite => "?".to_owned(),
        }
    }

    /// `n` parameters from `first` on, comma-separated.
    pub(super) fn params(self, first: usize, n: usize) -> String {
        let mut out = String::with_capacity(n * 4);
        for i in 0..n {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&self.p(first + i));
        }
        out
    }

    /// Quotes a validated identifier.
    fn quote(self, ident: &str) -> String {
        match self {
            Kind::Mysql => format!("`{ident}`"),
            Kind::Postgres | Kind::Sqlite => format!("\"{ident}\""),
        }
    }
}

/// The statements for one table, formatted once.
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) kind: Kind,
    /// Creates the tables and indexes, each `IF NOT EXISTS`.
    pub(super) migrate: Vec<String>,
    /// Binds key_id; selects cache_key, value.
    pub(super) get: String,
    /// Binds key_id; selects cache_key, value, remaining ms (or NULL).
    pub(super) get_ttl: String,
    /// Binds key_id; selects cache_key, remaining ms (or NULL).
    pub(super) ttl: String,
    /// Prefix of a batch read: append the `key_id` placeholders and `)`.
    pub(super) get_many: String,
    /// Binds key_id, cache_key, value, ttl ms (or NULL).
    pub(super) upsert: String,
    /// Binds key_id; deletes a live row.
    pub(super) delete: String,
    /// Prefix of a batch delete of live rows: append placeholders and `)`.
    pub(super) delete_many: String,
    /// Prefix of a batch delete of any rows: append placeholders and `)`.
    pub(super) delete_ids: String,
    /// Binds low, high; selects key_id, cache_key of live rows in `[low, high)`.
    pub(super) scan_range: String,
    /// Binds low; selects key_id, cache_key of live rows from `low` on.
    pub(super) scan_from: String,
    /// Binds low, high: deletes live rows in the range.
    pub(super) clear_live: String,
    /// Binds low, high: deletes any rows in the range.
    pub(super) clear_all: String,
    /// Binds low, high: deletes tag rows of tags in the range.
    pub(super) clear_tags: String,
    /// Binds tag_id, key_id; inserts a tag row unless present.
    pub(super) tag_add: String,
    /// Binds tag_id; selects cache_key of live tagged rows.
    pub(super) tag_keys: String,
    /// Binds tag_id; deletes the tagged rows.
    pub(super) tag_delete_values: String,
    /// Binds tag_id; deletes the tag's rows.
    pub(super) tag_delete_rows: String,
    /// Binds key_id, cache_key, value, ttl ms: inserts unless present.
    pub(super) insert_absent: String,
    /// Binds key_id; selects value, expiry, now; locks the row.
    pub(super) lock: String,
    /// Binds value, key_id.
    pub(super) set_value: String,
    /// Binds value, cache_key, ttl ms, key_id: a row that restarts.
    pub(super) restart: String,
    /// Binds key_id, token, ttl ms: takes a missing or expired lease.
    pub(super) lease_take: String,
    /// Binds key_id; selects the token of a live lease.
    pub(super) lease_holder: String,
    /// Binds ttl ms, key_id, token.
    pub(super) lease_renew: String,
    /// Binds key_id, token.
    pub(super) lease_release: String,
    /// Binds nothing: deletes up to a batch of expired rows.
    pub(super) sweep: String,
    /// Binds nothing: deletes expired leases.
    pub(super) sweep_leases: String,
    /// Binds nothing: deletes tag rows whose value is gone.
    pub(super) sweep_tags: String,
}

/// Rows deleted per sweep statement.
pub(super) const SWEEP_BATCH: usize = 10_000;

impl Statements {
    pub(super) fn new(kind: Kind, table: &str) -> Statements {
        let t = kind.quote(table);
        let g = kind.quote(&format!("{table}_tags"));
        let l = kind.quote(&format!("{table}_leases"));
        let exp_idx = kind.quote(&format!("{table}_exp_idx"));
        let key_idx = kind.quote(&format!("{table}_tkey_idx"));
        let now = kind.now();
        let p = |n| kind.p(n);
        let live = format!("(expires_at IS NULL OR expires_at > {now})");
        let migrate = match kind {
            Kind::Postgres => vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {t} (key_id BYTEA PRIMARY KEY, cache_key BYTEA NOT NULL, \
                     value BYTEA NOT NULL, expires_at BIGINT)"
                ),
                format!("CREATE INDEX IF NOT EXISTS {exp_idx} ON {t} (expires_at)"),
                format!(
                    "CREATE TABLE IF NOT EXISTS {g} (tag_id BYTEA NOT NULL, key_id BYTEA NOT NULL, \
                     PRIMARY KEY (tag_id, key_id))"
                ),
                format!("CREATE INDEX IF NOT EXISTS {key_idx} ON {g} (key_id)"),
                format!(
                    "CREATE TABLE IF NOT EXISTS {l} (key_id BYTEA PRIMARY KEY, token BYTEA NOT NULL, \
                     expires_at BIGINT NOT NULL)"
                ),
            ],
            Kind::Mysql => vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {t} (key_id VARBINARY(255) NOT NULL PRIMARY KEY, \
                     cache_key BLOB NOT NULL, value LONGBLOB NOT NULL, expires_at BIGINT NULL, \
                     INDEX {exp_idx} (expires_at)) ENGINE=InnoDB"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {g} (tag_id VARBINARY(255) NOT NULL, \
                     key_id VARBINARY(255) NOT NULL, PRIMARY KEY (tag_id, key_id), \
                     INDEX {key_idx} (key_id)) ENGINE=InnoDB"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {l} (key_id VARBINARY(255) NOT NULL PRIMARY KEY, \
                     token VARBINARY(255) NOT NULL, expires_at BIGINT NOT NULL) ENGINE=InnoDB"
                ),
            ],
            Kind::Sqlite => vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {t} (key_id BLOB NOT NULL PRIMARY KEY, \
                     cache_key BLOB NOT NULL, value BLOB NOT NULL, expires_at INTEGER) WITHOUT ROWID"
                ),
                format!("CREATE INDEX IF NOT EXISTS {exp_idx} ON {t} (expires_at)"),
                format!(
                    "CREATE TABLE IF NOT EXISTS {g} (tag_id BLOB NOT NULL, key_id BLOB NOT NULL, \
                     PRIMARY KEY (tag_id, key_id)) WITHOUT ROWID"
                ),
                format!("CREATE INDEX IF NOT EXISTS {key_idx} ON {g} (key_id)"),
                format!(
                    "CREATE TABLE IF NOT EXISTS {l} (key_id BLOB NOT NULL PRIMARY KEY, token BLOB NOT NULL, \
                     expires_at INTEGER NOT NULL) WITHOUT ROWID"
                ),
            ],
        };
        let upsert = match kind {
            Kind::Postgres | Kind::Sqlite => format!(
                "INSERT INTO {t} (key_id, cache_key, value, expires_at) VALUES ({}, {}, {}, {now} + {}) \
                 ON CONFLICT (key_id) DO UPDATE SET cache_key = excluded.cache_key, \
                 value = excluded.value, expires_at = excluded.expires_at",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            Kind::Mysql => format!(
                "INSERT INTO {t} (key_id, cache_key, value, expires_at) VALUES (?, ?, ?, {now} + ?) \
                 ON DUPLICATE KEY UPDATE cache_key = VALUES(cache_key), value = VALUES(value), \
                 expires_at = VALUES(expires_at)"
            ),
        };
        let ignore = |insert: &str| match kind {
            Kind::Postgres | Kind::Sqlite => format!("INSERT {insert} ON CONFLICT DO NOTHING"),
            Kind::Mysql => format!("INSERT IGNORE {insert}"),
        };
        let lease_take = match kind {
            Kind::Postgres | Kind::Sqlite => format!(
                "INSERT INTO {l} (key_id, token, expires_at) VALUES ({}, {}, {now} + {}) \
                 ON CONFLICT (key_id) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at \
                 WHERE {l}.expires_at <= {now}",
                p(1),
                p(2),
                p(3)
            ),
            // Assignments run left to right: `expires_at` last, so the
            // condition of `token` sees the old expiry.
            Kind::Mysql => format!(
                "INSERT INTO {l} (key_id, token, expires_at) VALUES (?, ?, {now} + ?) \
                 ON DUPLICATE KEY UPDATE \
                 token = IF(expires_at <= {now}, VALUES(token), token), \
                 expires_at = IF(expires_at <= {now}, VALUES(expires_at), expires_at)"
            ),
        };
        let lock_clause = match kind {
            Kind::Postgres | Kind::Mysql => " FOR UPDATE",
            // The transaction began with `BEGIN IMMEDIATE`.
            Kind::Sqlite => "",
        };
        let sweep = match kind {
            Kind::Mysql => format!(
                "DELETE FROM {t} WHERE expires_at IS NOT NULL AND expires_at <= {now} LIMIT {SWEEP_BATCH}"
            ),
            Kind::Postgres | Kind::Sqlite => format!(
                "DELETE FROM {t} WHERE key_id IN (SELECT key_id FROM {t} \
                 WHERE expires_at IS NOT NULL AND expires_at <= {now} LIMIT {SWEEP_BATCH})"
            ),
        };
        Statements {
            kind,
            migrate,
            get: format!(
                "SELECT cache_key, value FROM {t} WHERE key_id = {} AND {live}",
                p(1)
            ),
            get_ttl: format!(
                "SELECT cache_key, value, expires_at - {now} FROM {t} WHERE key_id = {} AND {live}",
                p(1)
            ),
            ttl: format!(
                "SELECT cache_key, expires_at - {now} FROM {t} WHERE key_id = {} AND {live}",
                p(1)
            ),
            get_many: format!(
                "SELECT key_id, cache_key, value FROM {t} WHERE {live} AND key_id IN ("
            ),
            upsert,
            delete: format!("DELETE FROM {t} WHERE key_id = {} AND {live}", p(1)),
            delete_many: format!("DELETE FROM {t} WHERE {live} AND key_id IN ("),
            delete_ids: format!("DELETE FROM {t} WHERE key_id IN ("),
            scan_range: format!(
                "SELECT key_id, cache_key FROM {t} WHERE key_id >= {} AND key_id < {} AND {live} \
                 ORDER BY key_id LIMIT 1000",
                p(1),
                p(2)
            ),
            scan_from: format!(
                "SELECT key_id, cache_key FROM {t} WHERE key_id >= {} AND {live} ORDER BY key_id LIMIT 1000",
                p(1)
            ),
            clear_live: format!(
                "DELETE FROM {t} WHERE key_id >= {} AND key_id < {} AND {live}",
                p(1),
                p(2)
            ),
            clear_all: format!(
                "DELETE FROM {t} WHERE key_id >= {} AND key_id < {}",
                p(1),
                p(2)
            ),
            clear_tags: format!(
                "DELETE FROM {g} WHERE tag_id >= {} AND tag_id < {}",
                p(1),
                p(2)
            ),
            tag_add: ignore(&format!(
                "INTO {g} (tag_id, key_id) VALUES ({}, {})",
                p(1),
                p(2)
            )),
            tag_keys: format!(
                "SELECT v.cache_key FROM {t} v JOIN {g} g ON g.key_id = v.key_id \
                 WHERE g.tag_id = {} AND (v.expires_at IS NULL OR v.expires_at > {now})",
                p(1)
            ),
            tag_delete_values: format!(
                "DELETE FROM {t} WHERE key_id IN (SELECT key_id FROM {g} WHERE tag_id = {})",
                p(1)
            ),
            tag_delete_rows: format!("DELETE FROM {g} WHERE tag_id = {}", p(1)),
            insert_absent: ignore(&format!(
                "INTO {t} (key_id, cache_key, value, expires_at) VALUES ({}, {}, {}, {now} + {})",
                p(1),
                p(2),
                p(3),
                p(4)
            )),
            lock: format!(
                "SELECT value, expires_at, {now} FROM {t} WHERE key_id = {}{lock_clause}",
                p(1)
            ),
            set_value: format!("UPDATE {t} SET value = {} WHERE key_id = {}", p(1), p(2)),
            restart: format!(
                "UPDATE {t} SET value = {}, cache_key = {}, expires_at = {now} + {} WHERE key_id = {}",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            lease_take,
            lease_holder: format!(
                "SELECT token FROM {l} WHERE key_id = {} AND expires_at > {now}",
                p(1)
            ),
            lease_renew: format!(
                "UPDATE {l} SET expires_at = {now} + {} WHERE key_id = {} AND token = {} AND expires_at > {now}",
                p(1),
                p(2),
                p(3)
            ),
            lease_release: format!(
                "DELETE FROM {l} WHERE key_id = {} AND token = {}",
                p(1),
                p(2)
            ),
            sweep_leases: format!("DELETE FROM {l} WHERE expires_at <= {now}"),
            sweep,
            sweep_tags: format!(
                "DELETE FROM {g} WHERE NOT EXISTS (SELECT 1 FROM {t} v WHERE v.key_id = {g}.key_id)"
            ),
        }
    }
}

/// Whether `table` is a name the statements can use unquoted-safe: ASCII
/// letters, digits and `_`, not starting with a digit, 1 to
/// [`MAX_TABLE_LEN`] bytes.
pub(super) fn valid_table(table: &str) -> bool {
    !table.is_empty()
        && table.len() <= MAX_TABLE_LEN
        && !table.starts_with(|c: char| c.is_ascii_digit())
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked() {
        assert!(valid_table("covet_cache"));
        assert!(valid_table("_x1"));
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a;drop",
            "a\"b",
            "é",
            &"x".repeat(49),
        ] {
            assert!(!valid_table(bad), "{bad:?}");
        }
    }

    #[test]
    fn postgres_numbers_its_parameters() {
        let s = Statements::new(Kind::Postgres, "c");
        assert!(s.upsert.contains("$4"));
        assert_eq!(Kind::Postgres.params(2, 3), "$2, $3, $4");
        assert_eq!(Kind::Mysql.params(2, 2), "?, ?");
    }
}
