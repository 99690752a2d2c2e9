//! The Lua scripts the backend runs on the server.

use std::sync::LazyLock;

use redis::Script;

// Adds a member to a tag's set and returns the tag's version, creating it
// if there is none; the set and the version live at least as long as the
// member. Sent as EVAL in a pipeline. KEYS[1] tag set, KEYS[2] tag version
// (same hash slot), ARGV[1] member, ARGV[2] member TTL in ms or '' (no
// expiry), ARGV[3] a fresh version.
pub(super) static TAG_PREPARE: &str = r"
local fresh = {redis.call('EXISTS', KEYS[1]) == 0, false}
local version = redis.call('GET', KEYS[2])
if not version then
  version = ARGV[3]
  redis.call('SET', KEYS[2], version)
  fresh[2] = true
end
redis.call('SADD', KEYS[1], ARGV[1])
for i = 1, 2 do
  if ARGV[2] == '' then
    redis.call('PERSIST', KEYS[i])
  elseif fresh[i] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  else
    local left = redis.call('PTTL', KEYS[i])
    if left >= 0 and left < tonumber(ARGV[2]) then
      redis.call('PEXPIRE', KEYS[i], ARGV[2])
    end
  end
end
return version
";

// Deletes a tag's version (every value stored with it reads as a miss from
// then on, and the next value stored with the tag gets a fresh version),
// then its members and its set, atomically (single server only: the
// members are not declared in KEYS). Nothing of the tag is left on the
// server. KEYS[1] tag set, KEYS[2] tag version. Returns how many members
// existed, the members, and whether the member list can be trusted (the
// set existed, or neither it nor a version did: nothing was tagged).
pub(super) static INVALIDATE_TAG: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local listed = redis.call('EXISTS', KEYS[1]) == 1
local versioned = redis.call('DEL', KEYS[2]) == 1
local members = redis.call('SMEMBERS', KEYS[1])
local n = 0
for i = 1, #members, 500 do
  n = n + redis.call('UNLINK', unpack(members, i, math.min(i + 499, #members)))
end
redis.call('UNLINK', KEYS[1])
local complete = 1
if versioned and not listed then
  complete = 0
end
return {n, members, complete}
",
    )
});

// Compare-and-delete of a lease. KEYS[1] lease key, ARGV[1] owner's token.
pub(super) static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

// Takes a lease for a token, idempotently (a retry that finds its own
// token holds it). KEYS[1] lease key, ARGV[1] token, ARGV[2] TTL in ms.
pub(super) static TRY_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if held then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
",
    )
});

// Extends a lease still held by a token. KEYS[1] lease key, ARGV[1] token,
// ARGV[2] TTL in ms.
pub(super) static RENEW_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});
