-- slots(op, ...): the concurrency slots of slots_store.py (acquire, release, settle), on
-- Redis's clock, in one step. Per limit key: `held:<key>` (hash attempt -> msgpack
-- [acquirer instance or '' while promoted, since]), `queue:<key>` (sorted set attempt ->
-- arrival number) and `messages:<key>` (hash attempt -> msgpack [member head, tail]: the
-- schedule member is built around its due, see codec.schedule_member_parts).
-- KEYS: schedule, instances, watch, keys (hash key -> msgpack [name, value, limit]),
--       sweep (sorted set: key with waiting attempts -> last settled), seq (counter)
-- ARGV: op, held prefix, queue prefix, messages prefix, task prefix, window, gap,
--       promoted ttl, records, then
--   acquire: per request: key, name, value, limit, task id, retries, instance, head, tail
--   release: per slot: key, task id, retries
--   sweep: how many keys
--   settle: the keys to settle (Redis Cluster's sweep)
-- records: '' reads the task records under the task prefix (one server: every key is in
-- one slot). On Redis Cluster the records are in other slots, so the caller reads them
-- first and passes them, msgpack {task id: [state or '', retries, instance or '']}; a
-- holder whose record is not passed counts as live and a waiting attempt's as not over
-- (a stale or missing read only ever delays a hand-on, never frees a held slot). '-'
-- (acquire on Redis Cluster, first pass): a request that would need the holders looked
-- at is answered '?' and changes nothing; the caller asks again with the records.
-- Returns acquire: {answers ('1' run, '' wait, '?' ask again), promoted, the attempts
-- (holders and first waiting) of the keys asked again}; else promoted.
local now = clock()
local since, last = read_watch(KEYS[3])
local op = ARGV[1]
local held_p, queue_p, msg_p, task_p = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local window, gap, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local asking = ARGV[9] == '-'
local given = nil
if ARGV[9] ~= '' and not asking then
  given = cmsgpack.unpack(ARGV[9])
end
local FIRST = 10
-- Waiting attempts per key whose records an acquire asks for, at most its limit (slots.py
-- _RECORDS_WAITING): only as many can be handed a slot.
local LOOK = 16

local known = {}
local function alive(instance)
  if not instance or instance == '' then
    return false
  end
  local found = known[instance]
  if found == nil then
    local heard = tonumber(redis.call('HGET', KEYS[2], instance))
    if not heard then
      found = false
    elseif now - last > gap then
      found = true
    else
      found = now - math.max(heard, since) <= window
    end
    known[instance] = found
  end
  return found
end

local function split(attempt)
  local id, retries = string.match(attempt, '^(.*):(%d+)$')
  return id, tonumber(retries)
end

-- The task's record: state (false if none), retries, the instance running it, and
-- whether it is unknown (Redis Cluster: not passed in).
local function record(id)
  if given then
    local r = given[id]
    if r == nil then
      return false, 0, false, true
    end
    return r[1] ~= '' and r[1], tonumber(r[2]) or 0, r[3] ~= '' and r[3], false
  end
  local r = redis.call('HMGET', task_p .. id, 'state', 'retries', 'instance')
  return r[1], tonumber(r[2] or '0') or 0, r[3], false
end

-- slots_store.attempt_over
local function over(state, recorded, retries)
  if not state then
    return false
  end
  return READY[state] or recorded > retries
end

-- slots_store.holder_live
local function live(attempt, holder)
  local id, retries = split(attempt)
  local state, recorded, runner, unknown = record(id)
  if unknown then
    return true
  end
  if over(state, recorded, retries) then
    return false
  end
  if state == 'processing' and recorded == retries and alive(runner) then
    return true
  end
  local h = cmsgpack.unpack(holder)
  if h[1] == '' then
    return now - tonumber(h[2]) < ttl
  end
  return alive(h[1])
end

local promoted = 0
-- slots_store.settle: drop holders not live, hand free slots to the first waiting.
local function settle(key, limit)
  local hk, qk, mk = held_p .. key, queue_p .. key, msg_p .. key
  local flat = redis.call('HGETALL', hk)
  local held = 0
  for i = 1, #flat, 2 do
    if live(flat[i], flat[i + 1]) then
      held = held + 1
    else
      redis.call('HDEL', hk, flat[i])
    end
  end
  while held < limit do
    local first = redis.call('ZRANGE', qk, 0, 0)
    if #first == 0 then
      break
    end
    local attempt = first[1]
    local packed = redis.call('HGET', mk, attempt)
    redis.call('ZREM', qk, attempt)
    redis.call('HDEL', mk, attempt)
    local id, retries = split(attempt)
    local state, recorded = record(id)
    if packed and not over(state, recorded, retries) then
      local parts = cmsgpack.unpack(packed)
      redis.call('HSET', hk, attempt, cmsgpack.pack({'', now}))
      schedule_add(KEYS[1], now, parts[1] .. struct.pack('>d', now) .. parts[2])
      held = held + 1
      promoted = promoted + 1
    end
  end
  return held
end

-- Forget a key nothing waits on (from the sweep) and nothing holds (from the keys).
local function tidy(key, held)
  if redis.call('ZCARD', queue_p .. key) == 0 then
    redis.call('ZREM', KEYS[5], key)
    if held == 0 then
      redis.call('HDEL', KEYS[4], key)
    end
  end
end

if op == 'acquire' then
  local answers = {}
  local asked = {}
  local look = {}  -- asking: the attempts whose records the second call needs
  for i = FIRST, #ARGV, 9 do
    local key, limit = ARGV[i], tonumber(ARGV[i + 3])
    local attempt = ARGV[i + 4] .. ':' .. ARGV[i + 5]
    local hk, qk = held_p .. key, queue_p .. key
    local answer = ''
    if redis.call('HEXISTS', hk, attempt) == 1 then
      answer = '1'  -- held already: a redelivery counts once
    elseif redis.call('ZSCORE', qk, attempt) then
      answer = ''   -- waiting already: keeps its place
    elseif asked[key] then
      answer = '?'  -- an earlier request on this key asks again: so does this one
    elseif redis.call('HLEN', hk) < limit and redis.call('ZCARD', qk) == 0 then
      answer = '1'  -- a free slot and nobody waiting: the holders need no look
    elseif asking then
      answer = '?'  -- the holders must be looked at: the caller reads their records
      asked[key] = true
      for _, a in ipairs(redis.call('HKEYS', hk)) do
        look[#look + 1] = a
      end
      for _, a in ipairs(redis.call('ZRANGE', qk, 0, math.min(limit, LOOK) - 1)) do
        look[#look + 1] = a
      end
    elseif settle(key, limit) < limit then
      answer = '1'
    else
      redis.call('ZADD', qk, redis.call('INCR', KEYS[6]), attempt)
      redis.call('HSET', msg_p .. key, attempt, cmsgpack.pack({ARGV[i + 7], ARGV[i + 8]}))
      redis.call('ZADD', KEYS[5], 'NX', now, key)
    end
    if answer == '1' then
      redis.call('HSET', hk, attempt, cmsgpack.pack({ARGV[i + 6], now}))
    end
    if answer ~= '?' then
      redis.call('HSET', KEYS[4], key, cmsgpack.pack({ARGV[i + 1], ARGV[i + 2], limit}))
    end
    answers[#answers + 1] = answer
  end
  return {answers, promoted, look}
end

-- Settle a key with its stored limit when someone waits on it; forget it when idle.
local function settle_stored(key)
  local meta = redis.call('HGET', KEYS[4], key)
  if meta then
    if redis.call('ZCARD', queue_p .. key) > 0 then
      settle(key, tonumber(cmsgpack.unpack(meta)[3]))
    end
    tidy(key, redis.call('HLEN', held_p .. key))
  end
end

if op == 'release' then
  for i = FIRST, #ARGV, 3 do
    redis.call('HDEL', held_p .. ARGV[i], ARGV[i + 1] .. ':' .. ARGV[i + 2])
    settle_stored(ARGV[i])
  end
  return promoted
end

-- sweep: the keys with waiting attempts settled longest ago; settle: the keys given
local keys
if op == 'settle' then
  keys = {}
  for i = FIRST, #ARGV do
    keys[#keys + 1] = ARGV[i]
  end
else
  keys = redis.call('ZRANGE', KEYS[5], 0, tonumber(ARGV[FIRST]) - 1)
end
for i = 1, #keys do
  redis.call('ZADD', KEYS[5], 'XX', now, keys[i])
  settle_stored(keys[i])
end
return promoted
