/**
 * The Lua scripts of the Redis KV: one commit script (checks, then every mutation, all
 * or nothing) and one list script (a batch of a lexicographic range, keys and values in
 * one round trip). Redis runs a script alone, so concurrent commits from any number of
 * processes serialise on Redis.
 *
 * Keys of one database share one hash tag (`{<prefix>}`); both scripts read and write
 * value keys they derive from encoded keys, which Redis Cluster allows within one slot.
 */

/**
 * The commit script.
 *
 * KEYS: the versionstamp counter, the index (sorted set). ARGV: the value keys' prefix
 * and the commit, packed in one string (one argument instead of several per key, which
 * a client encodes one by one). Every field of the commit is a four-byte big-endian
 * length and its bytes: the number of checks (four bytes alone), then per check the
 * encoded key and the expected versionstamp (empty: must be absent), then per mutation a
 * one-byte kind (`s` set, `d` delete, `+` sum, `<` min, `>` max), the encoded key, the
 * operand (a tagged value for `set`, decimal digits for the others, empty for `delete`)
 * and the `expireIn` in ms (empty: none).
 *
 * The value keys are the prefix and an encoded key, all under the prefix's hash tag, so
 * in the slot of KEYS (as the list script, the commit derives them).
 *
 * Answers the commit's versionstamp, nil when a check failed (nothing is written), or an
 * error when a `sum`/`min`/`max` meets a value that is not a `KvU64` (nothing written).
 */
export const COMMIT_SCRIPT = `
local prefix = ARGV[1]
local blob = ARGV[2]
local byte, sub = string.byte, string.sub
local pos = 1
local function u32()
  local a, b, c, d = byte(blob, pos, pos + 3)
  pos = pos + 4
  return ((a * 256 + b) * 256 + c) * 256 + d
end
local function field()
  local n = u32()
  local s = sub(blob, pos, pos + n - 1)
  pos = pos + n
  return s
end

-- Checks, read in bulk. A key found present has its index member already.
local present = {}
local nchecks = u32()
local checked, wanted, names = {}, {}, {}
for i = 1, nchecks do
  local member = field()
  checked[i] = member
  wanted[i] = field()
  names[i] = prefix .. member
end
for from = 1, nchecks, 1000 do
  local to = math.min(from + 999, nchecks)
  local found = redis.call('MGET', unpack(names, from, to))
  for i = from, to do
    local current = found[i - from + 1]
    local want = wanted[i]
    if current then
      if sub(current, 1, 20) ~= want then return false end
      present[checked[i]] = true
    elseif want ~= '' then
      return false
    end
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
    if i > 0 then d = d + byte(a, i) - 48 end
    if j > 0 then d = d + byte(b, j) - 48 end
    out[#out + 1] = string.char(48 + d % 10)
    carry = math.floor(d / 10)
    i = i - 1
    j = j - 1
  end
  return trim(string.reverse(table.concat(out)))
end
local function subtract(a, b)
  local out, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local d = byte(a, i) - 48 - borrow
    if j > 0 then d = d - (byte(b, j) - 48) end
    if d < 0 then d = d + 10; borrow = 1 else borrow = 0 end
    out[#out + 1] = string.char(48 + d)
    i = i - 1
    j = j - 1
  end
  return trim(string.reverse(table.concat(out)))
end

-- Per member: its new tagged value (false: deleted) and expiry (''), in first-write order.
local values, expiries, order, count = {}, {}, {}, 0
local function current(member)
  local v = values[member]
  if v ~= nil then return v end
  local stored = redis.call('GET', prefix .. member)
  if not stored then return false end
  present[member] = true
  return sub(stored, 21)
end
local function put(member, value, exp)
  if values[member] == nil then
    count = count + 1
    order[count] = member
  end
  values[member] = value
  expiries[member] = exp
end

local NAMES = { ['+'] = 'sum', ['<'] = 'min', ['>'] = 'max' }
local size = #blob
while pos <= size do
  local kind = sub(blob, pos, pos)
  pos = pos + 1
  local member = field()
  local operand = field()
  local exp = field()
  if kind == 's' then
    put(member, operand, exp)
  elseif kind == 'd' then
    put(member, false, '')
  else
    local c = current(member)
    local result = operand
    if c then
      if sub(c, 1, 1) ~= 'u' then
        return redis.error_reply("Failed to perform '" .. NAMES[kind] .. "' mutation on a non-U64 value in the database")
      end
      local data = sub(c, 2)
      if kind == '+' then
        result = add(data, operand)
        if cmp(result, TWO64) >= 0 then result = subtract(result, TWO64) end
      elseif kind == '<' then
        if cmp(data, operand) < 0 then result = data end
      else
        if cmp(data, operand) > 0 then result = data end
      end
    end
    put(member, 'u' .. result, '')
  end
end

local vs = string.format('%016x', redis.call('INCR', KEYS[1])) .. '0000'
-- Values without expiry set, and index members added and removed, in bulk: one call per
-- few hundred keys.
local sets, adds, removes, deletes = {}, {}, {}, {}
local nsets, nadds, nremoves = 0, 0, 0
for i = 1, count do
  local member = order[i]
  local value = values[member]
  local key = prefix .. member
  if value then
    local exp = expiries[member]
    if exp ~= '' then
      redis.call('SET', key, vs .. value, 'PX', exp)
    else
      sets[nsets + 1] = key
      sets[nsets + 2] = vs .. value
      nsets = nsets + 2
      if nsets >= 512 then
        redis.call('MSET', unpack(sets, 1, nsets))
        nsets = 0
      end
    end
    if not present[member] then
      adds[nadds + 1] = 0
      adds[nadds + 2] = member
      nadds = nadds + 2
      if nadds >= 512 then
        redis.call('ZADD', KEYS[2], unpack(adds, 1, nadds))
        nadds = 0
      end
    end
  else
    nremoves = nremoves + 1
    removes[nremoves] = member
    deletes[nremoves] = key
    if nremoves >= 256 then
      redis.call('ZREM', KEYS[2], unpack(removes, 1, nremoves))
      redis.call('DEL', unpack(deletes, 1, nremoves))
      nremoves = 0
    end
  end
end
if nsets > 0 then redis.call('MSET', unpack(sets, 1, nsets)) end
if nadds > 0 then redis.call('ZADD', KEYS[2], unpack(adds, 1, nadds)) end
if nremoves > 0 then
  redis.call('ZREM', KEYS[2], unpack(removes, 1, nremoves))
  redis.call('DEL', unpack(deletes, 1, nremoves))
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
