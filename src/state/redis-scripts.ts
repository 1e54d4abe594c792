/**
 * Lua scripts of state.redis, with Dapr's data layout: each key a HASH {data, version}; the
 * etag is `version`, raised with HINCRBY by every write (so it starts at "1"). A script runs
 * atomically in Redis, so the etag check and the write can't be split by another client.
 * Errors are returned as `CM_ETAG_*` replies, which redis.ts turns into CM_ERR_ETAG_MISMATCH.
 */

/** KEYS = keys; returns data, version, PTTL for each key, flat (false → nil for a missing key). */
export const GET_LUA = `
local out = {}
for _, k in ipairs(KEYS) do
  local r = redis.call("HMGET", k, "data", "version")
  out[#out + 1] = r[1]
  out[#out + 1] = r[2]
  out[#out + 1] = redis.call("PTTL", k)
end
return out`;

// Shared by SET, DEL and TX: state.redis's concurrency rule (etag.ts has the table). As daprd's
// scripts do, a key with no stored version is written (or deleted) whatever etag was given; a
// stored one must match a given etag under any concurrency; first-write without an etag may not
// overwrite an existing key.
const RULES = `
local function refused(op, fw, etag, cur)
  if not cur then return nil end
  if etag ~= "" then
    if cur ~= etag then return "CM_ETAG_MISMATCH" end
    return nil
  end
  if fw == "1" and op == "u" then return "CM_ETAG_EXISTS" end
  return nil
end
local function upsert(k, data, ttl)
  local v = redis.call("HINCRBY", k, "version", 1)
  redis.call("HSET", k, "data", data)
  if tonumber(ttl) > 0 then redis.call("EXPIRE", k, ttl) else redis.call("PERSIST", k) end
  return v
end`;

/** KEYS[1] = key; ARGV = data, etag ("" = none), first-write ("1"/"0"), ttl seconds ("0" = none). Returns the new version. */
export const SET_LUA = `${RULES}
local why = refused("u", ARGV[3], ARGV[2], redis.call("HGET", KEYS[1], "version"))
if why then return redis.error_reply(why) end
return upsert(KEYS[1], ARGV[1], ARGV[4])`;

/** KEYS[1] = key; ARGV = etag ("" = none), first-write ("1"/"0"). */
export const DEL_LUA = `${RULES}
local why = refused("d", ARGV[2], ARGV[1], redis.call("HGET", KEYS[1], "version"))
if why then return redis.error_reply(why) end
return redis.call("DEL", KEYS[1])`;

/**
 * KEYS[i] = key of op i; ARGV = 5 per op: "u"/"d", data, etag, first-write, ttl.
 * Phase 1 checks every op against the versions the earlier ops would leave (a key written twice
 * in one transaction gets the version the first write produced); phase 2 writes. Nothing is
 * written unless every check passed, and no other client runs in between: the script is the
 * MULTI/EXEC + WATCH of the reference design in one round trip, without a dedicated connection
 * per transaction (WATCH is per connection, and this client's connection is shared).
 */
export const TX_LUA = `${RULES}
local seen = {}
for i, k in ipairs(KEYS) do
  local b = (i - 1) * 5
  local cur = seen[k]
  if cur == nil then cur = redis.call("HGET", k, "version") end
  local why = refused(ARGV[b + 1], ARGV[b + 4], ARGV[b + 3], cur)
  if why then return redis.error_reply(why .. " " .. i) end
  if ARGV[b + 1] == "u" then seen[k] = tostring((tonumber(cur) or 0) + 1) else seen[k] = false end
end
for i, k in ipairs(KEYS) do
  local b = (i - 1) * 5
  if ARGV[b + 1] == "u" then upsert(k, ARGV[b + 2], ARGV[b + 5]) else redis.call("DEL", k) end
end
return #KEYS`;
