/**
 * The Lua scripts of the Redis KV: one commit script (checks, then every mutation, all
 * or nothing) and one list script (a batch of a lexicographic range, keys and values in
 * one round trip). Redis runs a script alone, so concurrent commits from any number of
 * processes serialise on Redis.
 *
 * Keys of one database share one hash tag (`{<prefix>}`); the list script reads value
 * keys it derives from index members, which Redis Cluster allows within one slot.
 */

/**
 * The commit script.
 *
 * KEYS: the versionstamp counter, the index (sorted set), then one value key per check,
 * then one per mutation. ARGV: the number of checks, the byte length of the value keys'
 * prefix (the index member is the rest of the key), each check's expected versionstamp
 * (`""`: must be absent), then three arguments per mutation: its kind (`set`, `delete`,
 * `sum`, `min`, `max`), its operand (a tagged value for `set`, decimal digits otherwise)
 * and its `expireIn` in ms (`""`: none).
 *
 * Answers the commit's versionstamp, nil when a check failed (nothing is written), or an
 * error when a `sum`/`min`/`max` meets a value that is not a `KvU64` (nothing written).
 */
export const COMMIT_SCRIPT = `
local nchecks = tonumber(ARGV[1])
local plen = tonumber(ARGV[2])
for i = 1, nchecks do
  local current = redis.call('GET', KEYS[2 + i])
  local want = ARGV[2 + i]
  if current then
    if string.sub(current, 1, 20) ~= want then return false end
  elseif want ~= '' then
    return false
  end
end

local TWO64 = '18446744073709551616'
local function cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
local function trim(s)
  local t = string.gsub(s, '^0+', '')
  if t == '' then return '0' end
  return t
end
local function add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry
    if i > 0 then d = d + string.byte(a, i) - 48 end
    if j > 0 then d = d + string.byte(b, j) - 48 end
    out[#out + 1] = string.char(48 + d % 10)
    carry = math.floor(d / 10)
    i = i - 1
    j = j - 1
  end
  return trim(string.reverse(table.concat(out)))
end
local function sub(a, b)
  local out, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local d = string.byte(a, i) - 48 - borrow
    if j > 0 then d = d - (string.byte(b, j) - 48) end
    if d < 0 then d = d + 10; borrow = 1 else borrow = 0 end
    out[#out + 1] = string.char(48 + d)
    i = i - 1
    j = j - 1
  end
  return trim(string.reverse(table.concat(out)))
end

local state, order = {}, {}
local function current(key)
  local s = state[key]
  if s ~= nil then return s end
  local stored = redis.call('GET', key)
  if not stored then return false end
  return { tag = string.sub(stored, 21, 21), data = string.sub(stored, 22), exp = '' }
end
local function put(key, s)
  if state[key] == nil then order[#order + 1] = key end
  state[key] = s
end

local first = 2 + nchecks
local nmut = #KEYS - first
for m = 1, nmut do
  local key = KEYS[first + m]
  local a = 2 + nchecks + (m - 1) * 3
  local kind, operand, exp = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  if kind == 'set' then
    put(key, { tag = string.sub(operand, 1, 1), data = string.sub(operand, 2), exp = exp })
  elseif kind == 'delete' then
    put(key, false)
  else
    local c = current(key)
    local result = operand
    if c then
      if c.tag ~= 'u' then
        return redis.error_reply("Failed to perform '" .. kind .. "' mutation on a non-U64 value in the database")
      end
      if kind == 'sum' then
        result = add(c.data, operand)
        if cmp(result, TWO64) >= 0 then result = sub(result, TWO64) end
      elseif kind == 'min' then
        if cmp(c.data, operand) < 0 then result = c.data end
      else
        if cmp(c.data, operand) > 0 then result = c.data end
      end
    end
    put(key, { tag = 'u', data = result, exp = '' })
  end
end

local vs = string.format('%016x', redis.call('INCR', KEYS[1])) .. '0000'
for _, key in ipairs(order) do
  local s = state[key]
  local member = string.sub(key, plen + 1)
  if s then
    redis.call('SET', key, vs .. s.tag .. s.data)
    if s.exp ~= '' then redis.call('PEXPIRE', key, s.exp) end
    redis.call('ZADD', KEYS[2], 0, member)
  else
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[2], member)
  end
end
return vs
`;

/**
 * The list script: one batch of a lexicographic range of the index.
 *
 * KEYS: the index. ARGV: the value keys' prefix, the range's lower and upper bounds in
 * `ZRANGEBYLEX` syntax, how many entries to answer at most, `1` to walk backwards.
 *
 * Answers `{done, last, member1, value1, member2, value2, ...}`: `done` is `1` when the
 * range has no member past `last` (the last member scanned, `""` if none). Members whose
 * value has expired are dropped from the index as they are met; the scan stops after a
 * bounded number of them so that one call stays short, and the caller goes on from
 * `last`.
 */
export const LIST_SCRIPT = `
local prefix, lo, hi = ARGV[1], ARGV[2], ARGV[3]
local want = tonumber(ARGV[4])
local reverse = ARGV[5] == '1'
local out = { '0', '' }
local found, scanned, budget = 0, 0, want + 1000
while true do
  local chunk = want - found
  local members
  if reverse then
    members = redis.call('ZREVRANGEBYLEX', KEYS[1], hi, lo, 'LIMIT', 0, chunk)
  else
    members = redis.call('ZRANGEBYLEX', KEYS[1], lo, hi, 'LIMIT', 0, chunk)
  end
  if #members == 0 then
    out[1] = '1'
    return out
  end
  local keys = {}
  for i, member in ipairs(members) do keys[i] = prefix .. member end
  local values = redis.call('MGET', unpack(keys))
  for i, member in ipairs(members) do
    if values[i] then
      out[#out + 1] = member
      out[#out + 1] = values[i]
      found = found + 1
    else
      redis.call('ZREM', KEYS[1], member)
    end
  end
  local last = members[#members]
  out[2] = last
  scanned = scanned + #members
  if #members < chunk then
    out[1] = '1'
    return out
  end
  if found >= want or scanned >= budget then return out end
  if reverse then hi = '(' .. last else lo = '(' .. last end
end
`;
