//! The Lua scripts the backend runs on the server.

use std::sync::LazyLock;

use redis::Script;

// Adds a member to a tag's set; the set lives at least as long as the member.
// KEYS[1] tag set, ARGV[1] member, ARGV[2] member TTL in ms or '' (no expiry).
pub(super) static TAG_ADD: &str = r"
local fresh = redis.call('EXISTS', KEYS[1]) == 0
redis.call('SADD', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  redis.call('PERSIST', KEYS[1])
elseif fresh then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  local left = redis.call('PTTL', KEYS[1])
  if left >= 0 and left < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
end
return 1
";

// Deletes a tag's members and the set, atomically (single server only: the
// members are not declared in KEYS). Returns how many members existed and
// the members.
pub(super) static INVALIDATE_TAG: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local members = redis.call('SMEMBERS', KEYS[1])
local n = 0
for i = 1, #members, 500 do
  n = n + redis.call('UNLINK', unpack(members, i, math.min(i + 499, #members)))
end
redis.call('UNLINK', KEYS[1])
return {n, members}
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
