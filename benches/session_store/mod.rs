//! The Redis stores alone (no HTTP, no layer), to tell apart what a
//! session request on Redis costs: the store's own code, the layout (a
//! hash per session against one string), and the client library (the
//! `redis` crate against `fred`).
//!
//! Every contender runs the same step on [`TASKS`] tokio tasks, one
//! session (or key) each: read it, add one to its count `n`, write it
//! back, and check the count it read, so a lost write stops the run.
//!
//! * `covet_store`: covet's `RedisStore::load` and `save` (a `Changes`
//!   that sets `n`, as a request before its renewal interval saves).
//! * `tower_store`: tower-sessions-redis-store's `load` and `save` (the
//!   whole record, MessagePack, `SET ... EXAT`).
//! * `redis_crate_hash`: the commands covet's store sends, on a bare
//!   `redis` crate connection: `HGETALL`, then `HSET` and `PEXPIREAT ...
//!   NX` in one pipeline.
//! * `redis_crate_string`: a JSON record in one string, `GET` then `SET
//!   ... PXAT`, on a bare `redis` crate connection.
//! * `fred_string`: the same string commands on a `fred` client.
//!
//! Read side by side: `covet_store` against `redis_crate_hash` is covet's
//! own cost; `redis_crate_hash` against `redis_crate_string` is the hash
//! layout's (which keeps concurrent writes to different keys and lets a
//! save find out in the same round trip that its session was deleted);
//! `redis_crate_string` against `fred_string` is the client library's;
//! `fred_string` against `tower_store` is tower-sessions' own cost.
//!
//! Each round also records the CPU time the contender used, of this
//! process and of the Redis server when it runs on this machine (the sum
//! of `/proc/<pid>/task/*/schedstat`): per step, it moves far less between
//! rounds than the rates, which depend on where tokio places the tasks.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use covet::session::store::{Changes, Data, Record};
use covet::session::{RedisStore, SessionId, SessionStore};
use tower_sessions_014::session::{Id as TowerId, Record as TowerRecord};
use tower_sessions_014::session_store::SessionStore as TowerSessionStore;
use tower_sessions_redis_store::fred::prelude::{Client as FredClient, Expiration, KeysInterface};

/// Concurrent tasks, one session or key each.
pub(crate) const TASKS: usize = 16;

/// The contenders; [`StoreBench::run`] takes an index into this list.
pub(crate) const NAMES: [&str; 5] = [
    "covet_store",
    "tower_store",
    "redis_crate_hash",
    "redis_crate_string",
    "fred_string",
];

/// One contender's round: steps per second, and the CPU time this process
/// and the Redis server spent on it (nanoseconds, where readable).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) rate: f64,
    pub(crate) cpu_self_ns: Option<u64>,
    pub(crate) cpu_redis_ns: Option<u64>,
}

/// A string record's step: decodes `bytes`, checks its count is
/// `expected`, and encodes it with the count one higher.
fn bump(bytes: &[u8], expected: u64, contender: &str) -> Vec<u8> {
    let mut record: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes).expect("a JSON record");
    let n = count_of(record.get("n"));
    assert_eq!(n, expected, "{contender} lost a write");
    record.insert("n".to_owned(), serde_json::json!(n + 1));
    serde_json::to_vec(&record).expect("JSON")
}

/// The stores, connections and keys of the store-only rounds.
pub(crate) struct StoreBench {
    covet: RedisStore,
    covet_ids: Vec<SessionId>,
    /// The counts the covet sessions hold now.
    covet_counts: Vec<u64>,
    tower: tower_sessions_redis_store::RedisStore<FredClient>,
    tower_ids: Vec<TowerId>,
    tower_counts: Vec<u64>,
    raw: redis::aio::MultiplexedConnection,
    fred: FredClient,
    /// Keys of the string records, shaped as the covet store's keys (the
    /// same length): the redis crate's, then fred's.
    string_keys: Vec<String>,
    string_counts: Vec<u64>,
    expires_ms: u64,
}

fn count_of(v: Option<&serde_json::Value>) -> u64 {
    v.and_then(serde_json::Value::as_u64)
        .expect("a count in the record")
}

impl StoreBench {
    /// Creates one session per task in both stores and one string record
    /// per task for each library.
    pub(crate) async fn new(
        covet: RedisStore,
        fred: FredClient,
        raw: redis::aio::MultiplexedConnection,
        expires_in: Duration,
    ) -> StoreBench {
        let expires_at = SystemTime::now() + expires_in;
        let mut covet_ids = Vec::with_capacity(TASKS);
        for _ in 0..TASKS {
            let mut data = Data::new();
            data.insert("n".to_owned(), serde_json::json!(0));
            let id = covet
                .create(&Record::new(data, expires_at))
                .await
                .expect("covet create");
            covet_ids.push(id);
        }
        let tower = tower_sessions_redis_store::RedisStore::new(fred.clone());
        let mut tower_ids = Vec::with_capacity(TASKS);
        for _ in 0..TASKS {
            let mut record = TowerRecord {
                id: TowerId::default(),
                data: Default::default(),
                expiry_date: tower_sessions_014::cookie::time::OffsetDateTime::now_utc()
                    + tower_sessions_014::cookie::time::Duration::seconds(
                        expires_in.as_secs() as i64
                    ),
            };
            record.data.insert("n".to_owned(), serde_json::json!(0));
            tower.create(&mut record).await.expect("tower create");
            tower_ids.push(record.id);
        }
        let expires_ms = expires_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as u64;
        let mut string_keys = Vec::with_capacity(2 * TASKS);
        for _ in 0..2 * TASKS {
            let id = SessionId::generate().expect("a random id");
            string_keys.push(covet.redis_key(&id));
        }
        let mut conn = raw.clone();
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .expect("INFO server");
        crate::cpu::watch_redis(&info);
        for key in &string_keys {
            redis::cmd("SET")
                .arg(key)
                .arg(r#"{"n":0}"#)
                .arg("PXAT")
                .arg(expires_ms)
                .query_async::<()>(&mut conn)
                .await
                .expect("SET a string record");
        }
        StoreBench {
            covet,
            covet_ids,
            covet_counts: vec![0; TASKS],
            tower,
            tower_ids,
            tower_counts: vec![0; TASKS],
            raw,
            fred,
            string_keys,
            string_counts: vec![0; 2 * TASKS],
            expires_ms,
        }
    }

    /// The Redis keys of covet's sessions and of the string records.
    pub(crate) fn covet_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.covet_ids
            .iter()
            .map(|id| self.covet.redis_key(id))
            .chain(self.string_keys.iter().cloned())
    }

    /// The Redis keys of the tower-sessions sessions (their ids).
    pub(crate) fn tower_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.tower_ids.iter().map(ToString::to_string)
    }

    /// `per_task` steps on every task of contender `which` (an index
    /// into [`NAMES`]); its [`Sample`].
    pub(crate) async fn run(&mut self, which: usize, per_task: u64) -> Sample {
        match which {
            0 => self.covet_store(per_task).await,
            1 => self.tower_store(per_task).await,
            2 => self.redis_crate_hash(per_task).await,
            3 => self.redis_crate_string(per_task).await,
            _ => self.fred_string(per_task).await,
        }
    }

    async fn covet_store(&mut self, per_task: u64) -> Sample {
        let expires_at = SystemTime::UNIX_EPOCH + Duration::from_millis(self.expires_ms);
        let store = self.covet.clone();
        timed(&mut self.covet_counts, per_task, |i, start| {
            let (store, id) = (store.clone(), self.covet_ids[i].clone());
            async move {
                for k in 0..per_task {
                    let record = store.load(&id).await.expect("load").expect("session");
                    let n = count_of(record.data.get("n"));
                    assert_eq!(n, start + k, "covet_store lost a write");
                    let mut changes = Changes::new(expires_at);
                    changes.extend = false;
                    changes.set.insert("n".to_owned(), serde_json::json!(n + 1));
                    store
                        .save(&id, &changes)
                        .await
                        .expect("save")
                        .expect("kept");
                }
            }
        })
        .await
    }

    async fn tower_store(&mut self, per_task: u64) -> Sample {
        let store = self.tower.clone();
        timed(&mut self.tower_counts, per_task, |i, start| {
            let (store, id) = (store.clone(), self.tower_ids[i]);
            async move {
                for k in 0..per_task {
                    let mut record = store.load(&id).await.expect("load").expect("session");
                    let n = count_of(record.data.get("n"));
                    assert_eq!(n, start + k, "tower_store lost a write");
                    record.data.insert("n".to_owned(), serde_json::json!(n + 1));
                    store.save(&record).await.expect("save");
                }
            }
        })
        .await
    }

    async fn redis_crate_hash(&mut self, per_task: u64) -> Sample {
        let keys: Vec<String> = self
            .covet_ids
            .iter()
            .map(|id| self.covet.redis_key(id))
            .collect();
        let (raw, expires_ms) = (self.raw.clone(), self.expires_ms);
        timed(&mut self.covet_counts, per_task, |i, start| {
            let (mut conn, key) = (raw.clone(), keys[i].clone());
            async move {
                for k in 0..per_task {
                    let fields: Vec<(String, String)> = redis::cmd("HGETALL")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .expect("HGETALL");
                    let n = fields
                        .iter()
                        .find(|(field, _)| field == "n")
                        .map(|(_, value)| {
                            let value: serde_json::Value =
                                serde_json::from_str(value).expect("a JSON value");
                            count_of(Some(&value))
                        })
                        .expect("a count");
                    assert_eq!(n, start + k, "redis_crate_hash lost a write");
                    let mut pipe = redis::pipe();
                    pipe.cmd("HSET")
                        .arg(&key)
                        .arg("n")
                        .arg(serde_json::to_string(&(n + 1)).expect("JSON"))
                        .ignore();
                    pipe.cmd("PEXPIREAT").arg(&key).arg(expires_ms).arg("NX");
                    let (created,): (i64,) = pipe.query_async(&mut conn).await.expect("HSET");
                    assert_eq!(created, 0, "the session hash existed");
                }
            }
        })
        .await
    }

    async fn redis_crate_string(&mut self, per_task: u64) -> Sample {
        let (keys, raw, expires_ms) = (&self.string_keys, self.raw.clone(), self.expires_ms);
        timed(&mut self.string_counts[..TASKS], per_task, |i, start| {
            let (mut conn, key) = (raw.clone(), keys[i].clone());
            async move {
                for k in 0..per_task {
                    let bytes: Vec<u8> = redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .expect("GET");
                    let bytes = bump(&bytes, start + k, "redis_crate_string");
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(bytes)
                        .arg("PXAT")
                        .arg(expires_ms)
                        .query_async::<()>(&mut conn)
                        .await
                        .expect("SET");
                }
            }
        })
        .await
    }

    async fn fred_string(&mut self, per_task: u64) -> Sample {
        let (keys, fred, expires_ms) = (&self.string_keys, self.fred.clone(), self.expires_ms);
        timed(&mut self.string_counts[TASKS..], per_task, |i, start| {
            let (client, key) = (fred.clone(), keys[TASKS + i].clone());
            async move {
                for k in 0..per_task {
                    let bytes: Vec<u8> = client.get(&key).await.expect("GET");
                    let bytes = bump(&bytes, start + k, "fred_string");
                    client
                        .set::<(), _, _>(
                            &key,
                            bytes,
                            Some(Expiration::PXAT(expires_ms as i64)),
                            None,
                            false,
                        )
                        .await
                        .expect("SET");
                }
            }
        })
        .await
    }
}

/// Runs `step(task, count at start)` on every task at once, then adds
/// `per_task` to every count; returns the round's [`Sample`].
async fn timed<F, Fut>(counts: &mut [u64], per_task: u64, mut step: F) -> Sample
where
    F: FnMut(usize, u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (self_before, redis_before) = crate::cpu::now();
    let start = Instant::now();
    let tasks: Vec<_> = (0..counts.len())
        .map(|i| tokio::spawn(step(i, counts[i])))
        .collect();
    for t in tasks {
        t.await.expect("store task");
    }
    let elapsed = start.elapsed();
    let (self_after, redis_after) = crate::cpu::now();
    for c in counts.iter_mut() {
        *c += per_task;
    }
    let used = crate::cpu::used;
    Sample {
        rate: (per_task * counts.len() as u64) as f64 / elapsed.as_secs_f64(),
        cpu_self_ns: used(self_before, self_after),
        cpu_redis_ns: used(redis_before, redis_after),
    }
}
